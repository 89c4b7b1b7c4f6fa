/// What the upstream chain carries to a provider: chat today, embeddings next.
///
/// The chain (`UpstreamChain`) and the proxy (`UpstreamProxy`) know nothing of the operation beyond this: how to
/// build the provider's request with the provider's adapter, and whether the answer streams (a streamed answer's
/// body has no total deadline of its own; the relay watches it).
public protocol UpstreamOperation: Sendable {
    /// Whether the provider's answer is a stream.
    var streams: Bool { get }

    /// Builds the request for one provider.
    /// - Throws: `GatewayError` (400) when this provider cannot express the operation; the chain skips a fallback
    ///   that cannot, and answers the client's own first choice with the error.
    func makeRequest(adapter: any ProviderAdapter, upstreamModel: String, provider: ProviderConfig) throws(GatewayError) -> UpstreamRequest
}

extension ChatRequest: UpstreamOperation {
    public var streams: Bool { stream }

    /// The client's own body to a provider that speaks the client's API; the canonical request translated to any
    /// other, unless it lost something on the way (`NativeRequest.untranslatable`).
    public func makeRequest(adapter: any ProviderAdapter, upstreamModel: String, provider: ProviderConfig) throws(GatewayError) -> UpstreamRequest {
        if let native {
            if adapter.speaks(native.dialect, provider: provider) {
                var request = try adapter.makePassthroughRequest(native, upstreamModel: upstreamModel, provider: provider)
                request.nativeDialect = native.dialect
                return request
            }
            if let refusal = native.refusal(by: provider) { throw refusal }
        }
        return try adapter.makeRequest(self, upstreamModel: upstreamModel, provider: provider)
    }
}
