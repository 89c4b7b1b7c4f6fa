import SQLiteNIO

/// The `stored_responses` table: responses kept for `previous_response_id` and `GET /v1/responses/{id}`.
extension SQLiteRequestLogStore {
    /// One statement for `rows` responses, as the batch's rows are written (`rowsPerStatement` at a time).
    static func insertStoredResponsesSQL(rows: Int) -> String {
        "INSERT OR IGNORE INTO stored_responses (id, key_name, created_at, expires_at, response, input) VALUES "
            + Array(repeating: "(?, ?, ?, ?, ?, ?)", count: rows).joined(separator: ", ")
    }

    static func binds(_ response: StoredResponse) -> [SQLiteData] {
        [
            .text(response.id), .text(response.keyName), .integer(SQLiteInt64(response.createdAtMicros)),
            .integer(SQLiteInt64(response.expiresAtMicros)), .text(response.response), .text(response.input),
        ]
    }

    public func storedResponse(id: String, keyName: String, nowMicros: Int64) async throws -> StoredResponse? {
        let rows = try await connection.query(
            "SELECT id, key_name, created_at, expires_at, response, input FROM stored_responses WHERE id = ? AND key_name = ? AND expires_at > ?",
            [.text(id), .text(keyName), .integer(SQLiteInt64(nowMicros))])
        guard let row = rows.first, let id = row.column("id")?.string, let key = row.column("key_name")?.string,
            let created = row.column("created_at")?.integer, let expires = row.column("expires_at")?.integer,
            let response = row.column("response")?.string, let input = row.column("input")?.string
        else { return nil }
        return StoredResponse(
            id: id, keyName: key, createdAtMicros: Int64(created), expiresAtMicros: Int64(expires), response: response, input: input)
    }

    public func deleteStoredResponse(id: String, keyName: String) async throws -> Bool {
        try await gate.run {
            let found = try await connection.query(
                "SELECT 1 FROM stored_responses WHERE id = ? AND key_name = ?", [.text(id), .text(keyName)])
            guard !found.isEmpty else { return false }
            _ = try await connection.query("DELETE FROM stored_responses WHERE id = ? AND key_name = ?", [.text(id), .text(keyName)])
            return true
        }
    }

    public func purgeStoredResponses(expiredBeforeMicros: Int64) async throws -> Int {
        try await gate.run {
            let expired = try await connection.query(
                "SELECT COUNT(*) AS n FROM stored_responses WHERE expires_at <= ?", [.integer(SQLiteInt64(expiredBeforeMicros))])
            _ = try await connection.query(
                "DELETE FROM stored_responses WHERE expires_at <= ?", [.integer(SQLiteInt64(expiredBeforeMicros))])
            return expired.first?.column("n")?.integer ?? 0
        }
    }
}
