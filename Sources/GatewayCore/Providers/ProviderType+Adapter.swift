extension ProviderType {
    /// The adapter for this protocol.
    public var adapter: any ProviderAdapter {
        switch self {
        case .openai: return OpenAIAdapter()
        case .anthropic: return AnthropicAdapter()
        case .gemini: return GeminiAdapter()
        }
    }
}
