/// A client API that some providers speak too: a request in it goes to such a provider as the client sent it.
public enum NativeDialect: String, Sendable {
    /// Anthropic's Messages API, spoken by `type: anthropic` providers.
    case anthropicMessages
    /// OpenAI's Responses API, spoken by OpenAI itself (`ProviderConfig.servesResponsesAPI`).
    case openAIResponses
}

/// The client's own request body, kept beside the canonical request for a provider that speaks the client's API.
///
/// To such a provider (`ProviderAdapter.nativeDialect`) the body goes out byte for byte, only its top-level
/// `model` replaced: thinking blocks and their signatures, `cache_control`, documents and server tools survive.
/// To any other provider the canonical request is translated as usual, and what it could not carry
/// (`untranslatable`) is a 400 naming it.
public struct NativeRequest: Sendable {
    /// The API the body is in.
    public var dialect: NativeDialect
    /// The body as the client sent it.
    public var body: [UInt8]
    /// The body as parsed when it was decoded (the exact cache's key is made from it).
    public var object: [String: JSON]
    /// The provider's path (`/v1/messages`, `/v1/messages/count_tokens`).
    public var path: String
    /// The client's headers a provider of this API receives (`anthropic-version`, `anthropic-beta`).
    public var forwardedHeaders: [(name: String, value: String)]
    /// What the canonical request could not carry, as the parameter and what it is, in request order.
    public var untranslatable: [(param: String, what: String)]

    public init(
        dialect: NativeDialect, body: [UInt8], object: [String: JSON], path: String, forwardedHeaders: [(name: String, value: String)] = [],
        untranslatable: [(param: String, what: String)] = []
    ) {
        self.dialect = dialect
        self.body = body
        self.object = object
        self.path = path
        self.forwardedHeaders = forwardedHeaders
        self.untranslatable = untranslatable
    }

    /// The body with its top-level `model` set to `model`, every other byte as sent.
    /// - Throws: `GatewayError` (400) when the body has no top-level `model` string (decoding checked it had).
    public func body(withModel model: String) throws(GatewayError) -> [UInt8] {
        guard JSONSplice.topLevelValueRange(of: "model", in: body) != nil else {
            throw .invalidRequest("Missing required parameter: 'model'.", param: "model", code: "missing_required_parameter")
        }
        return JSONSplice.replacingTopLevelValue(of: "model", in: body, with: .string(model))
    }

    /// The 400 a provider of another API gives when the request holds something it cannot honour; nil when none.
    func refusal(by provider: ProviderConfig) -> GatewayError? {
        guard let first = untranslatable.first else { return nil }
        return .invalidRequest(
            "Provider '\(provider.name)' (type \(provider.type.rawValue)) cannot honour \(first.what) in '\(first.param)'; "
                + "send this request to \(dialect == .anthropicMessages ? "an Anthropic" : "an OpenAI") model, or leave it out.",
            param: first.param, code: "unsupported_parameter")
    }
}

/// Finds a top-level member's value in a JSON object's text without parsing the rest, so the text can be changed
/// in one place and left byte for byte everywhere else.
enum JSONSplice {
    /// The byte range of the value of the top-level member `key` (its last occurrence), or nil when `bytes` is not an
    /// object or has no such member.
    static func topLevelValueRange(of key: String, in bytes: [UInt8]) -> Range<Int>? {
        var index = skipSpace(bytes, 0)
        guard index < bytes.count, bytes[index] == UInt8(ascii: "{") else { return nil }
        index += 1
        let wanted = Array(key.utf8)
        var found: Range<Int>?
        while true {
            index = skipSpace(bytes, index)
            guard index < bytes.count else { return nil }
            if bytes[index] == UInt8(ascii: "}") { return found }
            guard bytes[index] == UInt8(ascii: "\""), let keyEnd = stringEnd(bytes, index) else { return nil }
            let name = bytes[(index + 1)..<(keyEnd - 1)]
            index = skipSpace(bytes, keyEnd)
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return nil }
            index = skipSpace(bytes, index + 1)
            guard let valueEnd = valueEnd(bytes, index) else { return nil }
            if name.elementsEqual(wanted) { found = index..<valueEnd }
            index = skipSpace(bytes, valueEnd)
            guard index < bytes.count else { return nil }
            if bytes[index] == UInt8(ascii: ",") { index += 1 } else if bytes[index] != UInt8(ascii: "}") { return nil }
        }
    }

    /// `bytes` with the value of the top-level member `key` replaced by `value`; unchanged when it has no such member.
    static func replacingTopLevelValue(of key: String, in bytes: [UInt8], with value: JSON) -> [UInt8] {
        guard let range = topLevelValueRange(of: key, in: bytes) else { return bytes }
        var result = bytes
        result.replaceSubrange(range, with: Array(value.serialized().utf8))
        return result
    }

    private static func skipSpace(_ bytes: [UInt8], _ start: Int) -> Int {
        var index = start
        while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
        return index
    }

    /// The index just past the string starting at `start` (its opening quote).
    private static func stringEnd(_ bytes: [UInt8], _ start: Int) -> Int? {
        var index = start + 1
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "\\"): index += 2
            case UInt8(ascii: "\""): return index + 1
            default: index += 1
            }
        }
        return nil
    }

    /// The index just past the value starting at `start`.
    private static func valueEnd(_ bytes: [UInt8], _ start: Int) -> Int? {
        guard start < bytes.count else { return nil }
        switch bytes[start] {
        case UInt8(ascii: "\""):
            return stringEnd(bytes, start)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            var index = start
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: "\""):
                    guard let end = stringEnd(bytes, index) else { return nil }
                    index = end
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 { return index + 1 }
                default: break
                }
                index += 1
            }
            return nil
        default:
            var index = start
            while index < bytes.count, ![UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) {
                index += 1
            }
            return index > start ? index : nil
        }
    }
}
