/// Where a URL's credentials (`user[:password]@`) end, read one way by every URL the gateway takes (`postgres://`,
/// `redis://`) and by the redaction that hides them: the last `@` of the text after `scheme://` and before any
/// query, so a `/`, `:` or `@` left unencoded in a password still belongs to the password.
enum URLCredentials {
    /// Splits the text after `scheme://` (its query already removed) into the credentials and the rest.
    static func split(_ text: Substring) -> (credentials: Substring?, rest: Substring) {
        guard let at = text.lastIndex(of: "@") else { return (nil, text) }
        return (text[..<at], text[text.index(after: at)...])
    }

    /// `url` fit to show: the password replaced by `[redacted]` (the user name kept), the query replaced by
    /// `?[redacted]` (it may hold a token). Text that is no URL at all is shown only up to its first `:`.
    static func redacting(_ url: String) -> String {
        var text = Substring(url)
        var query = ""
        if let question = text.firstIndex(of: "?") {
            text = text[..<question]
            query = "?[redacted]"
        }
        guard let schemeEnd = text.range(of: "://") else {
            // Not a URL: it may still be credentials typed without a scheme (`user:password@host`).
            guard text.contains("@") || text.contains(":") else { return String(text) + query }
            return "[redacted]"
        }
        let (credentials, rest) = split(text[schemeEnd.upperBound...])
        guard let credentials else { return String(text) + query }
        let user = credentials.firstIndex(of: ":").map { credentials[..<$0] } ?? credentials
        let shown = credentials.contains(":") || user.isEmpty ? "\(user):[redacted]" : "[redacted]"
        return text[..<schemeEnd.upperBound] + shown + "@" + rest + query
    }
}
