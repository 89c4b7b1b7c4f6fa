/// A Responses API response kept for `GET /v1/responses/{id}` and for a later request's `previous_response_id`.
///
/// It travels with its request's row (`RequestRecord.storedResponse`) through the request log, spool included, and is
/// written to the `stored_responses` table in the same transaction as the row.
public struct StoredResponse: Sendable, Equatable {
    /// The `resp_…` id.
    public var id: String
    /// The name of the key that created it; only that key finds it. Empty when the request had no key.
    public var keyName: String
    /// When it was made, in microseconds since 1970.
    public var createdAtMicros: Int64
    /// When it stops being found (and may be purged), in microseconds since 1970.
    public var expiresAtMicros: Int64
    /// The `response` object as the client received it, as JSON text.
    public var response: String
    /// The conversation's input items up to this response (the previous responses' inputs and outputs, then this
    /// request's input), as a JSON array's text.
    public var input: String

    public init(id: String, keyName: String, createdAtMicros: Int64, expiresAtMicros: Int64, response: String, input: String) {
        self.id = id
        self.keyName = keyName
        self.createdAtMicros = createdAtMicros
        self.expiresAtMicros = expiresAtMicros
        self.response = response
        self.input = input
    }

    /// The bytes of its texts.
    var byteCount: Int { response.utf8.count + input.utf8.count + id.utf8.count + keyName.utf8.count }

    /// Whether `keyName` may see it at `nowMicros`.
    public func isVisible(to keyName: String, atMicros nowMicros: Int64) -> Bool {
        self.keyName == keyName && nowMicros < expiresAtMicros
    }

    /// The input items a request continuing this response starts from: its input, then its output items without
    /// their ids (a reasoning item only when it carries its encrypted content, the only form a provider takes back
    /// without its own store).
    public func conversationItems() -> [JSON] {
        let input = (try? JSON.parse(Array(self.input.utf8)))?.arrayValue ?? []
        let output = (try? JSON.parse(Array(response.utf8)))?["output"]?.arrayValue ?? []
        // Output items go back without their ids: a provider without this response in its own store refuses ids it
        // does not know.
        return input
            + output.filter { item in item["type"]?.stringValue != "reasoning" || item["encrypted_content"]?.stringValue != nil }
            .map { item in
                var item = item
                item["id"] = nil
                return item
            }
    }
}

extension StoredResponse {
    /// The response as an object inside a spool line.
    var spoolJSON: JSON {
        [
            "id": .string(id), "key_name": .string(keyName), "created_at": .int(createdAtMicros),
            "expires_at": .int(expiresAtMicros), "response": .string(response), "input": .string(input),
        ]
    }

    /// Reads it back from a spool line; nil when a field is missing.
    init?(spoolJSON json: JSON) {
        guard let id = json["id"]?.stringValue, let keyName = json["key_name"]?.stringValue,
            let created = json["created_at"]?.intValue, let expires = json["expires_at"]?.intValue,
            let response = json["response"]?.stringValue, let input = json["input"]?.stringValue
        else { return nil }
        self.init(id: id, keyName: keyName, createdAtMicros: Int64(created), expiresAtMicros: Int64(expires), response: response, input: input)
    }
}
