extension ProviderConfig {
    /// `text` from this provider (an error message, in a response or inside a stream) with its key hidden: the whole
    /// key, and any word that shows part of it, as providers do when they refuse one (`sk-proj-****…abcd`): a word
    /// with a run of masking characters (`***`, `…`, `...`), or with the key's first or last six characters.
    func redactingSecrets(_ text: String) -> String {
        var text = text
        if let key = apiKey, !key.isEmpty { text = text.replacingAll(key, with: "[redacted]") }
        let fragments = apiKey.map { key in key.count >= 12 ? [String(key.prefix(6)), String(key.suffix(6))] : [] } ?? []
        guard text.contains("*") || text.contains("…") || text.contains("...") || fragments.contains(where: text.contains) else { return text }
        var words: [Substring] = []
        for word in text.split(separator: " ", omittingEmptySubsequences: false) {
            let masked = word.contains("***") || word.contains("…") || word.contains("...") && word.count > 12
            words.append(masked || fragments.contains(where: word.contains) ? "[redacted]" : word)
        }
        return words.joined(separator: " ")
    }
}
