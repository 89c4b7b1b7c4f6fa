@testable import GatewayCore

/// The rules of a fake Gemini API: it refuses what `generativelanguage.googleapis.com` refuses, with the same
/// statuses and error shapes, and otherwise answers deterministically.
///
/// - Model `status-NNN` answers status NNN with Gemini's error body for it.
/// - With function declarations and no `functionResponse` in the last content, it calls the first function
///   with `{"city": "Paris"}`; otherwise it says `Hello from gemini: <last user text>`.
/// - Model `stream-truncate` streams one text event and stops without a finish reason.
enum FakeGeminiRules {
    /// nil when the real API would accept the request; else the status and Gemini-style error body.
    /// `path` is the raw request path including the query string, as received (percent-encoded).
    static func check(method: String, path: String, headers: [String: String], body: [UInt8], expectedKey: String)
        -> (status: Int, body: JSON)?
    {
        let query = queryParameters(path)
        if query.contains(where: { $0.name == "key" }) {
            return error(
                400,
                "llm-gateway test failure: the API key was sent in the URL (?key=). It must only be sent in the x-goog-api-key header."
            )
        }
        guard method == "POST", let route = route(path: path) else {
            return error(404, "Requested entity was not found.")
        }
        for parameter in query where !["alt", "$alt"].contains(parameter.name) {
            return error(
                400,
                "Invalid JSON payload received. Unknown name \"\(parameter.name)\": Cannot bind query parameter. Field '\(parameter.name)' could not be found in request message."
            )
        }
        let alt = query.last { $0.name == "alt" || $0.name == "$alt" }?.value
        if route.stream, alt != "sse" {
            return error(
                400, "llm-gateway test failure: streamGenerateContent must be called with alt=sse (server-sent events)."
            )
        }
        guard let key = headers["x-goog-api-key"], !key.isEmpty else {
            return error(
                403,
                "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API."
            )
        }
        guard key == expectedKey else {
            return error(400, "API key not valid. Please pass a valid API key.", reason: "API_KEY_INVALID")
        }
        guard let request = try? JSON.parse(body) else {
            return error(400, "Invalid JSON payload received. Unexpected token.")
        }
        guard request.objectValue != nil else {
            return error(400, "Invalid JSON payload received. Expected an object for the request body.")
        }
        let shapeProblems = GeminiShape.request.problems(in: request, at: "")
        if !shapeProblems.isEmpty { return error(400, shapeProblems.joined(separator: "\n")) }
        if let problem = GeminiRequestRules.problem(in: request) { return error(400, problem) }
        if route.model.hasPrefix("status-"), let code = Int(route.model.dropFirst("status-".count)) {
            return error(code, defaultMessage(for: code))
        }
        return nil
    }

    /// A successful non-streamed answer for an accepted request.
    static func response(for request: JSON, model: String) -> JSON {
        let answer = Answer(request)
        let count = max(1, field(field(request, "generationConfig"), "candidateCount")?.intValue ?? 1)
        let candidates: [JSON] = (0..<count).map { index in
            [
                "index": .int(Int64(index)),
                "content": ["role": "model", "parts": .array(answer.parts)],
                "finishReason": "STOP",
            ]
        }
        return [
            "candidates": .array(candidates),
            "usageMetadata": answer.usage(candidates: count),
            "modelVersion": .string(model),
            "responseId": "fake-gemini-response",
        ]
    }

    /// The SSE data payloads (each a GenerateContentResponse JSON) of a streamed answer, in order.
    static func streamEvents(for request: JSON, model: String) -> [ServerSentEvent] {
        let answer = Answer(request)
        func event(parts: [JSON], finished: Bool) -> ServerSentEvent {
            var candidate: [String: JSON] = ["index": 0, "content": ["role": "model", "parts": .array(parts)]]
            if finished { candidate["finishReason"] = "STOP" }
            let usage: JSON =
                finished
                ? answer.usage(candidates: 1)
                : [
                    "promptTokenCount": .int(Int64(answer.promptTokens)),
                    "totalTokenCount": .int(Int64(answer.promptTokens)),
                ]
            let response: JSON = [
                "candidates": [.object(candidate)], "usageMetadata": usage, "modelVersion": .string(model),
                "responseId": "fake-gemini-response",
            ]
            return ServerSentEvent(data: response.serialized())
        }
        if model == "stream-truncate" {
            return [event(parts: [["text": "Hello"]], finished: false)]
        }
        guard let text = answer.text else { return [event(parts: answer.parts, finished: true)] }
        // "Hello", " from gemini: ", "<last user text>": always three events, the last one finished.
        let pieces = [
            "Hello", String(text.dropFirst("Hello".count).prefix(" from gemini: ".count)),
            String(text.dropFirst("Hello from gemini: ".count)),
        ]
        return pieces.enumerated().map { index, piece in
            event(parts: [["text": .string(piece)]], finished: index == pieces.count - 1)
        }
    }

    /// The model and whether it is the streaming method, decoded from an accepted path.
    static func route(path: String) -> (model: String, stream: Bool)? {
        let rawPath = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]
        let prefix = "/v1beta/models/"
        guard rawPath.hasPrefix(prefix) else { return nil }
        let rest = rawPath.dropFirst(prefix.count)
        guard let colon = rest.lastIndex(of: ":") else { return nil }
        let stream: Bool
        switch rest[rest.index(after: colon)...] {
        case "generateContent": stream = false
        case "streamGenerateContent": stream = true
        default: return nil
        }
        // Strict on purpose: the segment may hold only unreserved characters and %XX escapes.
        guard let model = percentDecoded(rest[..<colon], strict: true), !model.isEmpty else { return nil }
        return (model, stream)
    }

    // MARK: - Answers

    /// What the fake says to one request.
    private struct Answer {
        var parts: [JSON]
        var text: String?
        var promptTokens: Int
        var answerTokens: Int

        init(_ request: JSON) {
            let contents = field(request, "contents")?.arrayValue ?? []
            let system = field(request, "systemInstruction").map { [$0] } ?? []
            var characters = 0
            for content in contents + system {
                for part in field(content, "parts")?.arrayValue ?? [] {
                    characters += part["text"]?.stringValue?.count ?? 0
                }
            }
            promptTokens = 10 + characters / 4
            let firstFunction = (field(request, "tools")?.arrayValue ?? [])
                .flatMap { field($0, "functionDeclarations")?.arrayValue ?? [] }
                .first.flatMap { $0["name"]?.stringValue }
            let lastParts = contents.last.flatMap { field($0, "parts")?.arrayValue } ?? []
            let answered = lastParts.contains { field($0, "functionResponse") != nil }
            if let firstFunction, !answered {
                let args: JSON = ["city": "Paris"]
                parts = [["functionCall": ["name": .string(firstFunction), "args": args]]]
                text = nil
                answerTokens = 1 + (args.objectValue?.count ?? 0)
            } else {
                let lastUser = contents.last { content in
                    let role = content["role"]?.stringValue ?? "user"
                    return role == "user" && (field(content, "parts")?.arrayValue ?? []).contains { $0["text"] != nil }
                }
                let userText =
                    (lastUser.flatMap { field($0, "parts")?.arrayValue } ?? [])
                    .last { $0["text"] != nil }?["text"]?.stringValue ?? ""
                let answer = "Hello from gemini: \(userText)"
                parts = [["text": .string(answer)]]
                text = answer
                answerTokens = answer.split(whereSeparator: \.isWhitespace).count
            }
        }

        func usage(candidates: Int) -> JSON {
            [
                "promptTokenCount": .int(Int64(promptTokens)),
                "candidatesTokenCount": .int(Int64(answerTokens * candidates)),
                "totalTokenCount": .int(Int64(promptTokens + answerTokens * candidates)),
            ]
        }
    }

    // MARK: - Errors

    /// Gemini's error envelope.
    static func error(_ code: Int, _ message: String, reason: String? = nil) -> (status: Int, body: JSON) {
        var error: [String: JSON] = [
            "code": .int(Int64(code)), "message": .string(message), "status": .string(status(for: code)),
        ]
        if let reason {
            error["details"] = [
                [
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": .string(reason),
                    "domain": "googleapis.com", "metadata": ["service": "generativelanguage.googleapis.com"],
                ]
            ]
        }
        return (code, ["error": .object(error)])
    }

    /// The `google.rpc.Code` name Google's HTTP mapping gives `code`.
    static func status(for code: Int) -> String {
        switch code {
        case 400: return "INVALID_ARGUMENT"
        case 401: return "UNAUTHENTICATED"
        case 403: return "PERMISSION_DENIED"
        case 404: return "NOT_FOUND"
        case 409: return "ABORTED"
        case 429: return "RESOURCE_EXHAUSTED"
        case 499: return "CANCELLED"
        case 500: return "INTERNAL"
        case 501: return "NOT_IMPLEMENTED"
        case 503: return "UNAVAILABLE"
        case 504: return "DEADLINE_EXCEEDED"
        default: return "UNKNOWN"
        }
    }

    static func defaultMessage(for code: Int) -> String {
        switch code {
        case 429: return "Resource has been exhausted (e.g. check quota)."
        case 500:
            return
                "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"
        case 503: return "The model is overloaded. Please try again later."
        case 504: return "Deadline expired before operation could complete."
        default: return "Fake Gemini error \(code)."
        }
    }

    // MARK: - Helpers

    /// A field read under its camelCase or snake_case name (the real API accepts both).
    static func field(_ object: JSON?, _ camelName: String) -> JSON? {
        guard let object else { return nil }
        return object[camelName] ?? object[GeminiShape.snakeCase(camelName)]
    }

    static func queryParameters(_ path: String) -> [(name: String, value: String)] {
        let pieces = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        guard pieces.count == 2 else { return [] }
        return pieces[1].split(separator: "&").map { pair in
            let halves = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = percentDecoded(halves[0], strict: false) ?? String(halves[0])
            let value = halves.count > 1 ? percentDecoded(halves[1], strict: false) ?? String(halves[1]) : ""
            return (name, value)
        }
    }

    /// Decodes %XX escapes; `strict` also refuses every raw byte outside RFC 3986's unreserved set.
    static func percentDecoded(_ text: Substring, strict: Bool) -> String? {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    return nil
                }
                bytes.append(high << 4 | low)
            } else if strict && !isUnreserved(byte) {
                return nil
            } else {
                bytes.append(byte == UInt8(ascii: "+") && !strict ? UInt8(ascii: " ") : byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }
}

// MARK: - Request schema

/// The fields of `GenerateContentRequest` as the v1beta API defines them; any other name is refused the way
/// Google's JSON decoder refuses it ("Unknown name ... Cannot find field.").
indirect enum GeminiShape: Sendable {
    case string, number, integer, boolean, bytes, anyValue
    /// `google.protobuf.Struct`: any JSON object.
    case structure
    case enumeration([String])
    case object([String: GeminiShape])
    case array(GeminiShape)
    /// An object with free keys (`Schema.properties`).
    case map(GeminiShape)
    /// The OpenAPI-subset `Schema`, which refers to itself.
    case schema

    static let content: GeminiShape = .object(["role": .string, "parts": .array(part)])

    static let part: GeminiShape = .object([
        "text": .string, "thought": .boolean, "thoughtSignature": .bytes, "partMetadata": .structure,
        "inlineData": .object(["mimeType": .string, "data": .bytes]),
        "fileData": .object(["mimeType": .string, "fileUri": .string]),
        "functionCall": .object(["id": .string, "name": .string, "args": .structure]),
        "functionResponse": .object([
            "id": .string, "name": .string, "response": .structure, "parts": .array(.anyValue),
            "willContinue": .boolean,
            "scheduling": .enumeration(["SCHEDULING_UNSPECIFIED", "SILENT", "WHEN_IDLE", "INTERRUPT"]),
        ]),
        "executableCode": .object(["language": .string, "code": .string]),
        "codeExecutionResult": .object(["outcome": .string, "output": .string]),
        "videoMetadata": .object(["startOffset": .string, "endOffset": .string, "fps": .number]),
    ])

    static let openAPISchema: GeminiShape = .object([
        "type": .string, "format": .string, "title": .string, "description": .string, "nullable": .boolean,
        "enum": .array(.string), "maxItems": .integer, "minItems": .integer, "properties": .map(.schema),
        "required": .array(.string), "minProperties": .integer, "maxProperties": .integer, "minLength": .integer,
        "maxLength": .integer, "pattern": .string, "example": .anyValue, "anyOf": .array(.schema),
        "propertyOrdering": .array(.string), "default": .anyValue, "items": .schema, "minimum": .number,
        "maximum": .number,
    ])

    static let tool: GeminiShape = .object([
        "functionDeclarations": .array(
            .object([
                "name": .string, "description": .string,
                "behavior": .enumeration(["UNSPECIFIED", "BLOCKING", "NON_BLOCKING"]),
                "parameters": .schema, "parametersJsonSchema": .anyValue, "response": .schema,
                "responseJsonSchema": .anyValue,
            ])),
        "googleSearchRetrieval": .structure, "codeExecution": .structure, "googleSearch": .structure,
        "urlContext": .structure, "computerUse": .structure, "fileSearch": .structure, "googleMaps": .structure,
    ])

    static let generationConfig: GeminiShape = .object([
        "stopSequences": .array(.string), "responseMimeType": .string, "responseSchema": .schema,
        "responseJsonSchema": .anyValue,
        "responseModalities": .array(.enumeration(["MODALITY_UNSPECIFIED", "TEXT", "IMAGE", "AUDIO"])),
        "candidateCount": .integer, "maxOutputTokens": .integer, "temperature": .number, "topP": .number,
        "topK": .integer,
        "seed": .integer, "presencePenalty": .number, "frequencyPenalty": .number, "responseLogprobs": .boolean,
        "logprobs": .integer, "enableEnhancedCivicAnswers": .boolean, "speechConfig": .structure,
        "thinkingConfig": .object(["includeThoughts": .boolean, "thinkingBudget": .integer, "thinkingLevel": .string]),
        "imageConfig": .structure, "mediaResolution": .string,
    ])

    static let request: GeminiShape = .object([
        "model": .string, "contents": .array(content), "systemInstruction": content, "tools": .array(tool),
        "toolConfig": .object([
            "functionCallingConfig": .object([
                "mode": .enumeration(["MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"]),
                "allowedFunctionNames": .array(.string),
            ]),
            "retrievalConfig": .structure,
        ]),
        "safetySettings": .array(.object(["category": .string, "threshold": .string, "method": .string])),
        "generationConfig": generationConfig, "cachedContent": .string,
    ])

    /// Every violation in `value`, in Google's wording; `path` is the snake_case field path so far.
    func problems(in value: JSON, at path: String) -> [String] {
        if value.isNull { return [] }
        func invalid(_ type: String) -> [String] { ["Invalid value at '\(path)' (\(type)), \(value)"] }
        switch self {
        case .anyValue:
            return []
        case .string:
            return value.stringValue == nil ? invalid("TYPE_STRING") : []
        case .number:
            return value.doubleValue == nil ? invalid("TYPE_FLOAT") : []
        case .integer:
            if value.intValue != nil { return [] }
            if let text = value.stringValue, Int64(text) != nil { return [] }
            return invalid("TYPE_INT32")
        case .boolean:
            return value.boolValue == nil ? invalid("TYPE_BOOL") : []
        case .bytes:
            guard let text = value.stringValue, Self.isBase64(text) else { return invalid("TYPE_BYTES") }
            return []
        case .structure:
            return value.objectValue == nil ? invalid("type.googleapis.com/google.protobuf.Struct") : []
        case .enumeration(let names):
            guard let name = value.stringValue, names.contains(name) else { return invalid("TYPE_ENUM") }
            return []
        case .schema:
            return Self.openAPISchema.problems(in: value, at: path)
        case .array(let element):
            guard let elements = value.arrayValue else { return invalid("TYPE_MESSAGE") }
            return elements.enumerated().flatMap { index, element2 in
                element.problems(in: element2, at: "\(path)[\(index)]")
            }
        case .map(let element):
            guard let members = value.objectValue else { return invalid("TYPE_MESSAGE") }
            return members.sorted { $0.key < $1.key }.flatMap { key, member in
                element.problems(in: member, at: "\(path)[\(key)].value")
            }
        case .object(let fields):
            guard let members = value.objectValue else { return invalid("TYPE_MESSAGE") }
            var problems: [String] = []
            for (key, member) in members.sorted(by: { $0.key < $1.key }) {
                let camel = Self.camelCase(key)
                let childPath = path.isEmpty ? Self.snakeCase(camel) : "\(path).\(Self.snakeCase(camel))"
                guard let shape = fields[camel] else {
                    let location = path.isEmpty ? "" : " at '\(path)'"
                    problems.append(
                        "Invalid JSON payload received. Unknown name \"\(key)\"\(location): Cannot find field.")
                    continue
                }
                problems += shape.problems(in: member, at: childPath)
            }
            return problems
        }
    }

    static func isBase64(_ text: String) -> Bool {
        text.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: "/"), UInt8(ascii: "-"),
                UInt8(ascii: "_"), UInt8(ascii: "="):
                return true
            default:
                return false
            }
        }
    }

    static func camelCase(_ name: String) -> String {
        var result = ""
        var upperNext = false
        for character in name {
            if character == "_" && !result.isEmpty {
                upperNext = true
            } else {
                result.append(upperNext ? Character(character.uppercased()) : character)
                upperNext = false
            }
        }
        return result
    }

    static func snakeCase(_ name: String) -> String {
        var result = ""
        for character in name {
            if character.isUppercase {
                result += "_" + character.lowercased()
            } else {
                result.append(character)
            }
        }
        return result
    }
}

// MARK: - Value rules

/// The checks Gemini makes beyond field names and types.
enum GeminiRequestRules {
    static let dataFields = [
        "text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode", "codeExecutionResult",
    ]

    /// The first rule `request` breaks, in Google's wording.
    static func problem(in request: JSON) -> String? {
        let contents = FakeGeminiRules.field(request, "contents")?.arrayValue ?? []
        if contents.isEmpty { return "* GenerateContentRequest.contents: contents is not specified" }
        for (index, content) in contents.enumerated() {
            if let role = content["role"]?.stringValue, !role.isEmpty, role != "user", role != "model" {
                return "Please use a valid role: user, model."
            }
            if let problem = partsProblem(content, path: "contents[\(index)]") { return problem }
        }
        if let system = FakeGeminiRules.field(request, "systemInstruction"),
            let problem = partsProblem(system, path: "system_instruction")
        {
            return problem
        }
        if let problem = generationConfigProblem(FakeGeminiRules.field(request, "generationConfig")) { return problem }
        return toolsProblem(request)
    }

    private static func partsProblem(_ content: JSON, path: String) -> String? {
        let parts = FakeGeminiRules.field(content, "parts")?.arrayValue ?? []
        if parts.isEmpty { return "* GenerateContentRequest.\(path).parts: contents.parts must not be empty." }
        for (index, part) in parts.enumerated() {
            let partPath = "\(path).parts[\(index)]"
            let set = dataFields.filter { FakeGeminiRules.field(part, $0).map { !$0.isNull } ?? false }
            if set.isEmpty {
                return
                    "* GenerateContentRequest.\(partPath).data: required oneof field 'data' must have one initialized field"
            }
            if set.count > 1 {
                return
                    "Invalid value at '\(partPath)' (oneof), oneof field 'data' is already set. Cannot overwrite with '\(GeminiShape.snakeCase(set[1]))'"
            }
            if part["text"]?.stringValue == "" {
                return
                    "Unable to submit request because it has an empty text parameter. Add a value to the parameter and try again."
            }
            for name in ["functionCall", "functionResponse"] {
                if let call = FakeGeminiRules.field(part, name), (call["name"]?.stringValue ?? "").isEmpty {
                    return
                        "* GenerateContentRequest.\(partPath).\(GeminiShape.snakeCase(name)).name: Name cannot be empty."
                }
            }
            if let blob = FakeGeminiRules.field(part, "inlineData") {
                if (FakeGeminiRules.field(blob, "mimeType")?.stringValue ?? "").isEmpty {
                    return "* GenerateContentRequest.\(partPath).inline_data.mime_type: mime_type cannot be empty."
                }
                if (blob["data"]?.stringValue ?? "").isEmpty {
                    return "* GenerateContentRequest.\(partPath).inline_data.data: data cannot be empty."
                }
            }
            if let file = FakeGeminiRules.field(part, "fileData"),
                (FakeGeminiRules.field(file, "fileUri")?.stringValue ?? "").isEmpty
            {
                return "* GenerateContentRequest.\(partPath).file_data.file_uri: file_uri cannot be empty."
            }
        }
        return nil
    }

    private static func generationConfigProblem(_ config: JSON?) -> String? {
        guard let config else { return nil }
        func number(_ name: String) -> Double? { FakeGeminiRules.field(config, name)?.doubleValue }
        if let temperature = number("temperature"), !(0...2).contains(temperature) {
            return
                "* GenerateContentRequest.generation_config.temperature: temperature must be in the range [0.0, 2.0]."
        }
        if let topP = number("topP"), !(0...1).contains(topP) {
            return "* GenerateContentRequest.generation_config.top_p: top_p must be in the range [0.0, 1.0]."
        }
        for name in ["presencePenalty", "frequencyPenalty"] {
            if let penalty = number(name), !(-2..<2).contains(penalty) {
                return
                    "* GenerateContentRequest.generation_config.\(GeminiShape.snakeCase(name)): must be in the range [-2.0, 2.0)."
            }
        }
        if let count = number("candidateCount"), !(1...8).contains(count) {
            return
                "* GenerateContentRequest.generation_config.candidate_count: candidate_count must be in the range [1, 8]."
        }
        if let maxTokens = number("maxOutputTokens"), maxTokens < 1 {
            return "* GenerateContentRequest.generation_config.max_output_tokens: max_output_tokens must be positive."
        }
        if (FakeGeminiRules.field(config, "stopSequences")?.arrayValue?.count ?? 0) > 5 {
            return
                "* GenerateContentRequest.generation_config.stop_sequences: the number of stop_sequences must be at most 5."
        }
        let schema = FakeGeminiRules.field(config, "responseSchema")
        let jsonSchema = FakeGeminiRules.field(config, "responseJsonSchema")
        if schema != nil, jsonSchema != nil {
            return
                "* GenerateContentRequest.generation_config: response_schema and response_json_schema are mutually exclusive."
        }
        if schema != nil || jsonSchema != nil {
            let mimeType = FakeGeminiRules.field(config, "responseMimeType")?.stringValue
            if mimeType != "application/json" && mimeType != "text/x.enum" {
                return
                    "* GenerateContentRequest.generation_config.response_mime_type: response_mime_type must be application/json or text/x.enum when a response schema is set."
            }
        }
        if FakeGeminiRules.field(config, "logprobs") != nil,
            FakeGeminiRules.field(config, "responseLogprobs")?.boolValue != true
        {
            return "* GenerateContentRequest.generation_config.logprobs: logprobs requires response_logprobs to be set."
        }
        return nil
    }

    private static func toolsProblem(_ request: JSON) -> String? {
        var names: Set<String> = []
        for (toolIndex, tool) in (FakeGeminiRules.field(request, "tools")?.arrayValue ?? []).enumerated() {
            let declarations = FakeGeminiRules.field(tool, "functionDeclarations")?.arrayValue ?? []
            for (index, declaration) in declarations.enumerated() {
                let path = "tools[\(toolIndex)].function_declarations[\(index)]"
                let name = declaration["name"]?.stringValue ?? ""
                if !isValidFunctionName(name) {
                    return
                        "* GenerateContentRequest.\(path).name: Invalid function name. Must start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), colons (:) or dashes (-), with a maximum length of 64."
                }
                names.insert(name)
                if FakeGeminiRules.field(declaration, "parameters") != nil,
                    FakeGeminiRules.field(declaration, "parametersJsonSchema") != nil
                {
                    return
                        "* GenerateContentRequest.\(path): parameters and parameters_json_schema are mutually exclusive."
                }
            }
        }
        let calling = FakeGeminiRules.field(FakeGeminiRules.field(request, "toolConfig"), "functionCallingConfig")
        let allowed =
            FakeGeminiRules.field(calling, "allowedFunctionNames")?.arrayValue?.compactMap(\.stringValue) ?? []
        if !allowed.isEmpty {
            if calling?["mode"]?.stringValue != "ANY" {
                return
                    "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: allowed_function_names may only be set when the mode is ANY."
            }
            if let unknown = allowed.first(where: { !names.contains($0) }) {
                return
                    "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: function '\(unknown)' is not declared."
            }
        }
        return nil
    }

    private static func isValidFunctionName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.unicodeScalars.count <= 64 else { return false }
        func isLetter(_ scalar: Unicode.Scalar) -> Bool { ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) }
        guard isLetter(first) || first == "_" else { return false }
        return name.unicodeScalars.allSatisfy {
            isLetter($0) || ("0"..."9").contains($0) || "_.:-".unicodeScalars.contains($0)
        }
    }
}
