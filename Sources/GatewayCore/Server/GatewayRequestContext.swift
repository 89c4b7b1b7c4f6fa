import Hummingbird
import NIOCore

/// Per-request state: the request id, the configuration snapshot and the authenticated key.
public struct GatewayRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The gateway's id of the request: the request log's row key, in every log line.
    public var requestID = ""
    /// The client's `X-Request-Id`, when it sent an acceptable one: echoed back instead of `requestID`.
    public var clientRequestID: String?
    /// When the gateway received the request.
    public var startedAt = ContinuousClock.now
    /// The configuration this request runs under, taken once at its start.
    public var snapshot: ConfigSnapshot?
    /// The authenticated key, set by `AuthMiddleware`.
    public var key: KeyConfig? {
        get { sharedKey?.value }
        set { sharedKey = newValue.map(Shared.init) }
    }
    private var sharedKey: Shared<KeyConfig>?
    /// What is known about the request so far, for its request-log row.
    var outcome: RequestOutcome?
    /// The client's connection, watched to cancel work when it closes.
    public let channel: (any Channel)?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }

    /// `server.max_body_bytes` of the snapshot.
    public var maxUploadSize: Int { snapshot?.config.server.maxBodyBytes ?? ServerSettings().maxBodyBytes }

    /// Milliseconds since the request arrived.
    public var elapsedMilliseconds: Int {
        Int((ContinuousClock.now - startedAt).wholeMilliseconds)
    }
}
