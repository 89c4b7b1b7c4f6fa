import PostgresNIO

/// The `stored_responses` table: responses kept for `previous_response_id` and `GET /v1/responses/{id}`.
extension PostgresRequestLogStore {
    /// One `INSERT` for `responses`, every value bound.
    static func insertStoredResponsesQuery(_ responses: ArraySlice<StoredResponse>) -> PostgresQuery {
        var bindings = PostgresBindings(capacity: responses.count * 6)
        var rows: [String] = []
        for response in responses {
            let first = bindings.count + 1
            rows.append("(" + (first..<first + 6).map { "$\($0)" }.joined(separator: ", ") + ")")
            bindings.append(storable(response.id))
            bindings.append(storable(response.keyName))
            bindings.append(response.createdAtMicros)
            bindings.append(response.expiresAtMicros)
            bindings.append(storable(response.response))
            bindings.append(storable(response.input))
        }
        let sql = "INSERT INTO stored_responses (id, key_name, created_at, expires_at, response, input) VALUES "
            + rows.joined(separator: ", ") + " ON CONFLICT (id) DO NOTHING"
        return PostgresQuery(unsafeSQL: sql, binds: bindings)
    }

    public func storedResponse(id: String, keyName: String, nowMicros: Int64) async throws -> StoredResponse? {
        let id = Self.storable(id)
        let key = Self.storable(keyName)
        return try await bounded("stored response", timeout: operationTimeout) { [client, logger] in
            let rows = try await client.query(
                """
                SELECT id, key_name, created_at, expires_at, response, input FROM stored_responses
                WHERE id = \(id) AND key_name = \(key) AND expires_at > \(nowMicros)
                """, logger: logger)
            for try await (id, key, created, expires, response, input) in rows.decode((String, String, Int64, Int64, String, String).self) {
                return StoredResponse(id: id, keyName: key, createdAtMicros: created, expiresAtMicros: expires, response: response, input: input)
            }
            return nil
        }
    }

    public func deleteStoredResponse(id: String, keyName: String) async throws -> Bool {
        let id = Self.storable(id)
        let key = Self.storable(keyName)
        return try await bounded("delete stored response", timeout: operationTimeout) { [client, logger] in
            let rows = try await client.query(
                "DELETE FROM stored_responses WHERE id = \(id) AND key_name = \(key) RETURNING id", logger: logger)
            return try await rows.collect().count > 0
        }
    }

    public func purgeStoredResponses(expiredBeforeMicros: Int64) async throws -> Int {
        try await bounded("purge stored responses", timeout: operationTimeout) { [client, logger] in
            let rows = try await client.query(
                "DELETE FROM stored_responses WHERE expires_at <= \(expiredBeforeMicros) RETURNING id", logger: logger)
            return try await rows.collect().count
        }
    }
}
