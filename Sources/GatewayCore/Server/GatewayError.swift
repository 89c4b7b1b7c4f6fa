/// An error answered to the client in OpenAI's envelope:
/// `{"error": {"message", "type", "param", "code"}}`.
///
/// Messages never contain provider keys, gateway keys or full upstream URLs.
public struct GatewayError: Error, Sendable, Equatable, CustomStringConvertible {
    /// HTTP status code of the answer.
    public var status: Int
    /// OpenAI error type, e.g. `invalid_request_error`.
    public var type: String
    /// Human-readable message.
    public var message: String
    /// The request parameter at fault, if any.
    public var param: String?
    /// A machine-readable code, if any.
    public var code: String?
    /// Upstream attempts made before the chain gave up (failover and retries included); nil before routing.
    public var attempts: Int?

    public init(status: Int, type: String, message: String, param: String? = nil, code: String? = nil) {
        self.status = status
        self.type = type
        self.message = message
        self.param = param
        self.code = code
    }

    public var description: String { "\(status) \(type): \(message)" }

    /// The envelope as JSON.
    public var envelope: JSON {
        [
            "error": [
                "message": .string(message),
                "type": .string(type),
                "param": param.map(JSON.string) ?? .null,
                "code": code.map(JSON.string) ?? .null,
            ]
        ]
    }

    // MARK: - Common errors

    /// 400: the request breaks the OpenAI schema or cannot be honoured.
    public static func invalidRequest(_ message: String, param: String? = nil, code: String? = nil) -> GatewayError {
        GatewayError(status: 400, type: "invalid_request_error", message: message, param: param, code: code)
    }

    /// 401: no key or an unknown key.
    public static func unauthorized(_ message: String) -> GatewayError {
        GatewayError(status: 401, type: "authentication_error", message: message, code: "invalid_api_key")
    }

    /// 403: the key may not use this model.
    public static func forbidden(_ message: String, param: String? = nil) -> GatewayError {
        GatewayError(status: 403, type: "permission_error", message: message, param: param, code: "model_not_allowed")
    }

    /// 404: unknown model or route.
    public static func notFound(_ message: String, param: String? = nil, code: String? = nil) -> GatewayError {
        GatewayError(status: 404, type: "not_found_error", message: message, param: param, code: code)
    }

    /// 413: the body is over `server.max_body_bytes`.
    public static func payloadTooLarge(limit: Int) -> GatewayError {
        GatewayError(
            status: 413, type: "invalid_request_error",
            message: "Request body is larger than the gateway's limit of \(limit) bytes.", code: "request_too_large")
    }

    /// 503: the provider cannot be used right now (e.g. its key variable is unset).
    public static func unavailable(_ message: String) -> GatewayError {
        GatewayError(status: 503, type: "service_unavailable", message: message, code: providerUnavailable)
    }

    /// The code of `unavailable`: no provider could take the request (not configured, circuit open).
    static let providerUnavailable = "provider_unavailable"

    /// 502: the upstream answered something unusable or could not be reached.
    public static func badGateway(_ message: String, code: String? = "upstream_error") -> GatewayError {
        GatewayError(status: 502, type: "api_error", message: message, code: code)
    }

    /// 504: the upstream did not answer in time.
    public static func gatewayTimeout(_ message: String) -> GatewayError {
        GatewayError(status: 504, type: "timeout_error", message: message, code: "upstream_timeout")
    }
}
