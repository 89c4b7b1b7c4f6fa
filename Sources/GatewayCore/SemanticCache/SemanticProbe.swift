import NIOConcurrencyHelpers

/// What the semantic tier does for one chat request: the text it embeds, the partition its search never leaves,
/// and, once looked up, the vector and what the embedder call cost.
///
/// Embedded: the user turns, all of them in order (text only), at most `maximumEmbeddedCharacters` (the latest
/// kept). Matched exactly, as the partition: the key scope, the embedder, the model, every other message (system,
/// developer, assistant, tool, and where the user turns sit among them), and every other request field that can
/// change the answer (the exact cache's, `CacheKey`: tools, tool_choice, response_format, temperature per value,
/// top_p, n, seed, max_tokens, stop, …). Two requests with a different system prompt, model, tools or scope
/// never share an answer.
final class SemanticProbe: Sendable {
    /// The most characters of user turns embedded.
    static let maximumEmbeddedCharacters = 8192

    let settings: SemanticCacheSettings
    /// The embedding model, resolved in the request's snapshot.
    let embedder: ResolvedModel
    let table: ModelTable
    /// The partition's key: a SHA-256 of everything that must match exactly.
    let partition: String
    /// The user turns, as embedded.
    let text: String
    /// The answer's lifetime.
    let ttl: Duration

    private struct Looked {
        var vector: [Float]?
        var embedderCostUSD: Double?
        var embedderLatencyMs: Int?
    }

    private let looked = NIOLockedValueBox(Looked())

    private init(settings: SemanticCacheSettings, embedder: ResolvedModel, table: ModelTable, partition: String, text: String, ttl: Duration) {
        self.settings = settings
        self.embedder = embedder
        self.table = table
        self.partition = partition
        self.text = text
        self.ttl = ttl
    }

    /// The probe for `request`, or nil when the semantic tier takes no part: not configured for this route and
    /// model, an embedder that does not resolve, or user turns that are not all text (an image is matched exactly
    /// or not at all).
    static func make(
        for request: ChatRequest, route: String, settings: SemanticCacheSettings?, namespace: String, ttl: Duration, table: ModelTable
    ) -> SemanticProbe? {
        guard let settings, settings.applies(route: route, model: request.model), let embedder = table.resolve(settings.embedder),
            embedder.kind != .chat, let (text, context) = split(request.messages)
        else { return nil }
        var key = #"{"namespace":"#
        JSON.writeString(namespace, to: &key)
        key += #","embedder":"#
        JSON.writeString(settings.embedder, to: &key)
        key += #","request":{"#
        CacheKey.writeFields(of: request.body, alsoExcluding: ["messages"], to: &key)
        key += #"},"context":"#
        CacheKey.writeCanonical(.array(context), to: &key)
        key += "}"
        return SemanticProbe(
            settings: settings, embedder: embedder, table: table, partition: KeyHash.sha256Hex(key), text: text, ttl: settings.ttl ?? ttl)
    }

    /// The user turns' text, and the rest of the conversation (each user turn a placeholder, so where the turns sit
    /// is matched too); nil when a user turn holds anything but text, or there is none.
    static func split(_ messages: [[String: JSON]]) -> (text: String, context: [JSON])? {
        var turns: [String] = []
        var context: [JSON] = []
        for message in messages {
            guard message["role"]?.stringValue == "user" else {
                context.append(.object(message))
                continue
            }
            var text = ""
            switch message["content"] {
            case .string(let content): text = content
            case .array(let parts):
                for part in parts {
                    guard part["type"]?.stringValue == "text", let piece = part["text"]?.stringValue else { return nil }
                    text += text.isEmpty ? piece : "\n" + piece
                }
            default: return nil
            }
            turns.append(text)
            var placeholder = message
            placeholder["content"] = nil
            context.append(.object(placeholder))
        }
        guard !turns.isEmpty else { return nil }
        var text = turns.joined(separator: "\n\n")
        if text.count > maximumEmbeddedCharacters { text = String(text.suffix(maximumEmbeddedCharacters)) }
        guard !text.allSatisfy(\.isWhitespace) else { return nil }
        return (text, context)
    }

    // MARK: - What the lookup learnt

    /// Keeps the lookup's vector (for storing the answer) and the embedder call's cost and duration.
    func record(vector: [Float]?, costUSD: Double?, latencyMs: Int) {
        looked.withLockedValue { $0 = Looked(vector: vector, embedderCostUSD: costUSD, embedderLatencyMs: latencyMs) }
    }

    /// The embedded vector, once the lookup has it.
    var vector: [Float]? { looked.withLockedValue { $0.vector } }

    /// What the embedder call cost (nil before it or when unpriced) and took.
    var embedderCall: (costUSD: Double?, latencyMs: Int?) {
        looked.withLockedValue { ($0.embedderCostUSD, $0.embedderLatencyMs) }
    }
}
