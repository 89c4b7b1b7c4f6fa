import Hummingbird
import NIOCore

/// `GET` and `DELETE /v1/responses/{id}`: a kept response, for the key that made it.
///
/// Another key's response, an expired one and an unknown id are all the same 404 (`response_not_found`), so a key
/// learns nothing about the responses of others.
struct StoredResponsesRoute: Sendable {
    /// The kept responses; nil when the request log is off (then there are none).
    let stored: StoredResponses?

    /// The response object as it was answered.
    @Sendable func retrieve(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let (id, stored, key) = try target(of: context)
        let response: StoredResponse?
        do {
            response = try await stored.find(id: id, keyName: key)
        } catch {
            throw GatewayError.unavailable("The response cannot be read now: the request log's database is unavailable. Try again later.")
        }
        guard let response else { throw Self.notFound(id) }
        return .json(text: ByteBuffer(string: response.response))
    }

    /// Deletes the response: `{"id": …, "object": "response", "deleted": true}`.
    @Sendable func delete(_ request: Request, context: GatewayRequestContext) async throws -> Response {
        let (id, stored, key) = try target(of: context)
        let deleted: Bool
        do {
            deleted = try await stored.delete(id: id, keyName: key)
        } catch let error as GatewayError {
            throw error
        } catch {
            throw GatewayError.unavailable("The response cannot be deleted now: the request log's database is unavailable. Try again later.")
        }
        guard deleted else { throw Self.notFound(id) }
        return .json(["id": .string(id), "object": "response", "deleted": true])
    }

    private func target(of context: GatewayRequestContext) throws -> (id: String, stored: StoredResponses, keyName: String) {
        guard let key = context.key else { throw GatewayError.unauthorized("Missing API key.") }
        let id = context.parameters.get("id") ?? ""
        guard let stored else {
            throw GatewayError.notFound(
                "Response with id '\(OpenAIResponsesDialect.printable(id))' not found: this gateway keeps no responses (its request log is off).",
                param: "response_id", code: "response_not_found")
        }
        return (id, stored, key.name)
    }

    private static func notFound(_ id: String) -> GatewayError {
        .notFound("Response with id '\(OpenAIResponsesDialect.printable(id))' not found.", param: "response_id", code: "response_not_found")
    }
}
