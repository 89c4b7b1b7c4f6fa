/// The response-cache key of a chat request: equal for requests that must get the same answer.
///
/// The key is the lower-case hex SHA-256 of a canonical JSON text holding the namespace and every request field
/// that can change the answer. Canonical means object member order, whitespace and the spelling of numbers
/// (`1`, `1.0`, `1e0`) do not matter, and a field set to `null` is the same as an absent one.
///
/// Which fields count: every field of the body except the few known to leave the answer alone
/// (`excludedFields`: transport, attribution and billing options such as `stream`, `user`, `metadata`).
/// That is a deny list on purpose: the fields OpenAI documents as shaping the answer (`model`, `messages`,
/// `temperature`, `top_p`, `max_tokens`, `max_completion_tokens`, `stop`, `tools`, `tool_choice`,
/// `response_format`, `seed`, `n`, `presence_penalty`, `frequency_penalty`, `logit_bias`, `logprobs`,
/// `top_logprobs`, `parallel_tool_calls`, `reasoning_effort`, `verbosity`, `prediction`, ...) are all in, and so
/// is anything else a client sends through to an OpenAI-compatible server (`top_k`, `min_p`,
/// `repetition_penalty`, ...). An unknown field can then cost a miss but never serve a wrong answer.
///
/// ```swift
/// let key = CacheKey.make(for: request, namespace: keyConfig.sha256)
/// ```
public enum CacheKey {
    /// Top-level request fields that do not change the answer and are left out of the key.
    public static let excludedFields: Set<String> = [
        "stream", "stream_options", "user", "metadata", "store", "service_tier", "safety_identifier",
        "prompt_cache_key", "prompt_cache_retention",
    ]

    /// The cache key of `request` within `namespace`.
    ///
    /// - Parameters:
    ///   - request: the validated request.
    ///   - namespace: separates answers that must not be shared, e.g. the gateway key's hash for per-key
    ///     caches, or a constant for one global cache.
    /// - Returns: 64 lower-case hex digits.
    public static func make(for request: ChatRequest, namespace: String) -> String {
        make(body: request.body, namespace: namespace)
    }

    /// The key of any request body (an embeddings request's, with a namespace of its own).
    public static func make(body: [String: JSON], namespace: String) -> String {
        // The text of `{"namespace": …, "request": {…}}` with sorted keys, written in one pass: no canonical copy
        // of the request is built first.
        var text = #"{"namespace":"#
        JSON.writeString(namespace, to: &text)
        text += #","request":{"#
        writeFields(of: body, to: &text)
        text += "}}"
        return KeyHash.sha256Hex(text)
    }

    /// Appends `"name":value` for every field of `body` that can change the answer (not null, not in
    /// `excludedFields` nor `alsoExcluding`), by sorted name, each value canonical.
    static func writeFields(of body: [String: JSON], alsoExcluding other: Set<String> = [], to text: inout String) {
        var first = true
        for name in body.keys.sorted() where !excludedFields.contains(name) && !other.contains(name) {
            let value = body[name]!
            if value.isNull { continue }
            if !first { text += "," }
            first = false
            JSON.writeString(name, to: &text)
            text += ":"
            writeCanonical(value, to: &text)
        }
    }

    /// Whether answers to `request` may be stored and served from the cache.
    ///
    /// The cache has exact-match semantics: it answers a request with the answer an identical earlier request got.
    /// Sampling settings do not change that, so `temperature > 0`, `n > 1` and `seed`-less requests are cacheable
    /// (an operator who wants fresh samples turns the cache off for the key). Not cacheable:
    /// - `store: true`: the client asked the provider to keep the completion, which a cached answer would skip.
    /// - audio output (`modalities` containing `"audio"`, or `audio`): audio answers are large, and the stream
    ///   assembler does not rebuild them.
    public static func isCacheable(_ request: ChatRequest) -> Bool {
        if request.body["store"]?.boolValue == true { return false }
        if request.has("audio") { return false }
        if let modalities = request.body["modalities"]?.arrayValue, modalities.contains(where: { $0.stringValue == "audio" }) {
            return false
        }
        return true
    }

    /// Appends `value`'s text with sorted keys and every integral number written as an integer, so `1`, `1.0`
    /// and `1e0` read alike (doubles up to 1e15 already do; larger integral ones would take an exponent).
    static func writeCanonical(_ value: JSON, to output: inout String) {
        switch value {
        case .double(let number)
        // The bounds are exactly representable doubles, so the conversion below never traps.
        where number.rounded() == number && number >= -9.223_372_036_854_775_808e18 && number < 9.223_372_036_854_775_808e18:
            output += String(Int64(number))
        case .array(let elements):
            output += "["
            for (offset, element) in elements.enumerated() {
                if offset > 0 { output += "," }
                writeCanonical(element, to: &output)
            }
            output += "]"
        case .object(let members):
            output += "{"
            for (offset, key) in members.keys.sorted().enumerated() {
                if offset > 0 { output += "," }
                JSON.writeString(key, to: &output)
                output += ":"
                writeCanonical(members[key]!, to: &output)
            }
            output += "}"
        case .null, .bool, .int, .double, .string:
            value.write(to: &output)
        }
    }
}
