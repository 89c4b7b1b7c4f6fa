import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1

/// An upstream response whose head has arrived with a 2xx status, body not yet read.
public struct OpenedUpstream: Sendable {
    /// The model that is answering.
    public var model: ResolvedModel
    /// The adapter for its provider.
    public var adapter: any ProviderAdapter
    /// The response; its body is still to be read.
    public var response: UpstreamResponse
    /// When the whole request must be done.
    public var deadline: ContinuousClock.Instant
    /// Whether the request went out as the client sent it (`NativeRequest`): the answer is in the client's API.
    public var passthrough: Bool { nativeDialect != nil }
    /// The client's API the request went out in, as sent; nil when the provider got its own API.
    public var nativeDialect: NativeDialect?

    /// Translates a non-streamed answer into the canonical one: a Responses answer by `OpenAIResponsesReader`,
    /// anything else by the provider's adapter.
    func translateResponse(_ body: JSON, model: String) throws(GatewayError) -> ChatCompletion {
        nativeDialect == .openAIResponses ? try OpenAIResponsesReader.completion(from: body, model: model) : try adapter.translateResponse(body, model: model)
    }

    /// The translator of a streamed answer into canonical chunks, chosen as `translateResponse` chooses.
    func makeStreamTranslator(model: String, includeUsage: Bool) -> any StreamTranslator {
        nativeDialect == .openAIResponses
            ? OpenAIResponsesStreamReader(model: model, includeUsage: includeUsage) : adapter.makeStreamTranslator(model: model, includeUsage: includeUsage)
    }
}

/// Sends an operation's requests to providers and maps every failure to a `GatewayError` fit for the client.
public struct UpstreamProxy: Sendable {
    /// The pooled clients.
    public let clients: UpstreamClients
    /// Largest non-streamed answer read from a provider.
    public static let maximumResponseBytes = 64 * 1024 * 1024

    public init(clients: UpstreamClients) {
        self.clients = clients
    }

    /// Sends `operation` to `model`'s provider and waits for a successful response head.
    /// - Parameters:
    ///   - deadline: the whole request's deadline; the head must also arrive within the provider's `first_byte`.
    /// - Throws: `AttemptFailure` saying whether the chain should move on.
    public func open<Operation: UpstreamOperation>(
        _ operation: Operation, model: ResolvedModel, deadline: ContinuousClock.Instant, logger: Logger
    ) async throws(AttemptFailure) -> OpenedUpstream {
        let provider = model.provider
        guard provider.isEnabled else {
            let names = provider.missingVariables.map { "$\($0)" }.joined(separator: ", ")
            throw AttemptFailure(
                .unavailable("Provider '\(provider.name)' for model '\(model.name)' is not configured: environment variable \(names) is not set."),
                triggersFailover: true, retryable: false)
        }
        let adapter = provider.type.adapter
        let upstream: UpstreamRequest
        do {
            upstream = try operation.makeRequest(adapter: adapter, upstreamModel: model.upstream, provider: provider)
        } catch {
            var failure = AttemptFailure.final(error)
            failure.rejectedBeforeSending = true
            throw failure
        }
        let headDeadline = min(ContinuousClock.now + provider.timeouts.firstByte, deadline)
        let response: UpstreamResponse
        do {
            response = try await clients.post(
                upstream, to: provider, headDeadline: headDeadline, bodyDeadline: operation.streams ? nil : deadline, logger: logger)
        } catch {
            throw Self.transportFailure(error, provider: provider)
        }
        guard (200..<300).contains(Int(response.status.code)) else {
            throw await Self.statusFailure(response, provider: provider, adapter: adapter)
        }
        return OpenedUpstream(model: model, adapter: adapter, response: response, deadline: deadline, nativeDialect: upstream.nativeDialect)
    }

    /// Reads a non-streamed answer's whole body within the request's deadline, as JSON, with its text.
    public func body(of opened: OpenedUpstream) async throws(GatewayError) -> (json: JSON, body: ByteBuffer) {
        let provider = opened.model.provider
        let body: ByteBuffer
        let response = opened.response
        do {
            if response.body.endsAtDeadline {
                body = try await response.body.collect(upTo: Self.maximumResponseBytes)
            } else {
                body = try await withDeadline(opened.deadline) { try await response.body.collect(upTo: Self.maximumResponseBytes) }
            }
        } catch let error as GatewayError {
            throw error
        } catch is DeadlineExceeded {
            throw Self.totalTimeout(provider).error
        } catch {
            throw Self.transportFailure(error, provider: provider).error
        }
        guard let json = try? JSON.parse(body.readableBytesView) else {
            throw .badGateway("Provider '\(provider.name)' answered with a body that is not JSON.")
        }
        return (json, body)
    }

    /// Reads and translates a non-streamed chat answer.
    public func completion(from opened: OpenedUpstream, requestedModel: String) async throws(GatewayError) -> ChatCompletion {
        let (json, body) = try await self.body(of: opened)
        var completion = try opened.translateResponse(json, model: requestedModel)
        if opened.adapter.passesAnswersThrough, !opened.passthrough { completion.text = JSON.trimmingWhitespace(body.readableBytesView) }
        if opened.passthrough { completion.native = JSON.trimmingWhitespace(body.readableBytesView) }
        return completion
    }

    // MARK: - Errors

    static func joinURL(_ base: String, _ path: String) -> String {
        var base = Substring(base)
        while base.hasSuffix("/") { base = base.dropLast() }
        return base + path
    }

    /// Classifies a failure to get a response head: timeouts, refused or reset connections and TLS errors all fail over.
    static func transportFailure(_ error: any Error, provider: ProviderConfig) -> AttemptFailure {
        if let error = error as? GatewayError { return AttemptFailure(error, triggersFailover: false) }
        let name = provider.name
        if error is CancellationError || (error as? HTTPClientError) == .cancelled {
            return AttemptFailure(
                GatewayError(status: 499, type: "api_error", message: "The request was cancelled.", code: "cancelled"),
                triggersFailover: false)
        }
        if let error = error as? UpstreamConnectionError {
            switch error {
            case .headTimeout: return headTimeout(provider)
            case .readTimeout: return idleTimeout(provider)
            case .bodyTimeout: return totalTimeout(provider)
            case .tooManyConnections(let limit):
                return AttemptFailure(
                    .unavailable("Provider '\(name)' already has \(limit) requests in flight on this event loop; try again later."),
                    triggersFailover: true)
            case .responseTooLarge(let limit):
                return AttemptFailure(.badGateway("Provider '\(name)' answered with more than \(Units.formatSize(limit))."), triggersFailover: true)
            case .closed:
                return AttemptFailure(
                    .badGateway("Could not reach provider '\(name)': the connection closed before the response was complete.", code: "upstream_unreachable"),
                    triggersFailover: true)
            case .protocolViolation:
                return AttemptFailure(
                    .badGateway("Provider '\(name)' did not answer with valid HTTP/1.1.", code: "upstream_unreachable"), triggersFailover: true)
            }
        }
        if let error = error as? ChannelError, case .connectTimeout = error { return connectTimeout(provider) }
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded: return headTimeout(provider)
            case .connectTimeout: return connectTimeout(provider)
            case .readTimeout: return idleTimeout(provider)
            default:
                break
            }
        }
        return AttemptFailure(
            .badGateway("Could not reach provider '\(name)': connection failed (\(Self.kind(of: error))).", code: "upstream_unreachable"),
            triggersFailover: true)
    }

    private static func headTimeout(_ provider: ProviderConfig) -> AttemptFailure {
        AttemptFailure(
            .gatewayTimeout("Provider '\(provider.name)' sent no response within its first_byte timeout (\(Units.format(provider.timeouts.firstByte)))."),
            triggersFailover: true, timedOut: true)
    }

    private static func connectTimeout(_ provider: ProviderConfig) -> AttemptFailure {
        AttemptFailure(
            .gatewayTimeout("Could not connect to provider '\(provider.name)' within its connect timeout (\(Units.format(provider.timeouts.connect)))."),
            triggersFailover: true, timedOut: true)
    }

    private static func totalTimeout(_ provider: ProviderConfig) -> AttemptFailure {
        AttemptFailure(.gatewayTimeout("Provider '\(provider.name)' did not finish within its total timeout."), triggersFailover: true, timedOut: true)
    }

    private static func idleTimeout(_ provider: ProviderConfig) -> AttemptFailure {
        AttemptFailure(.gatewayTimeout("Provider '\(provider.name)' stopped sending data (idle timeout)."), triggersFailover: true, timedOut: true)
    }

    /// A short name for an error's kind that cannot carry a URL or a key.
    private static func kind(of error: any Error) -> String {
        let text = String(describing: type(of: error))
        return text.isEmpty ? "error" : text
    }

    /// Maps a provider's error status: 429, 5xx, 401 and 403 (the gateway's key refused) fail over; other client
    /// errors go back to the client as they are.
    static func statusFailure(_ response: UpstreamResponse, provider: ProviderConfig, adapter: any ProviderAdapter) async -> AttemptFailure {
        let status = Int(response.status.code)
        let body = try? await response.body.collect(upTo: 1024 * 1024)
        var detail = body.flatMap { try? JSON.parse($0.readableBytesView) }.flatMap { adapter.errorMessage(from: $0) }
            ?? "no error message"
        detail = provider.redactingSecrets(detail)
        if detail.count > 2000 { detail = String(detail.prefix(2000)) + "…" }
        let message = "Provider '\(provider.name)' returned HTTP \(status): \(detail)"
        let retryAfter = AttemptFailure.retryAfter(
            seconds: response.headers.first(name: "retry-after"), milliseconds: response.headers.first(name: "retry-after-ms"))
        switch status {
        case 429:
            return AttemptFailure(
                GatewayError(status: 429, type: "rate_limit_exceeded", message: message, code: "upstream_rate_limited"),
                triggersFailover: true, retryAfter: retryAfter)
        case 500...:
            return AttemptFailure(.badGateway(message), triggersFailover: true, retryAfter: retryAfter)
        case 401, 403:
            // The provider refused the gateway's own key (revoked, expired, without access): nothing the client can
            // fix, so never `authentication_error` (which tells a client its gateway key is wrong). Another provider
            // may still answer; retrying this one will not help.
            return AttemptFailure(
                .badGateway("Provider '\(provider.name)' refused the gateway's credentials (HTTP \(status)): \(detail)", code: "upstream_credentials_rejected"),
                triggersFailover: true, retryable: false)
        case 404: return .final(GatewayError(status: 404, type: "not_found_error", message: message, code: "upstream_not_found"))
        case 413: return .final(GatewayError(status: 413, type: "invalid_request_error", message: message, code: "request_too_large"))
        case 400..<500: return .final(GatewayError(status: status, type: "invalid_request_error", message: message, code: "upstream_rejected"))
        default: return AttemptFailure(.badGateway(message), triggersFailover: true)
        }
    }
}

extension String {
    /// This string with every occurrence of `target` replaced.
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var result = ""
        var rest = self[...]
        while let range = rest.range(of: target) {
            result += rest[..<range.lowerBound]
            result += replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}

extension Substring {
    func range(of target: String) -> Range<Substring.Index>? {
        guard let first = target.first else { return nil }
        var index = startIndex
        while let start = self[index...].firstIndex(of: first) {
            if self[start...].hasPrefix(target) { return start..<self.index(start, offsetBy: target.count) }
            index = self.index(after: start)
        }
        return nil
    }
}
