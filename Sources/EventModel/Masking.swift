/// Masks personal data for logs and console output: ID numbers keep their region and last four
/// characters, phone numbers their first three and last four, names their family name.
public enum Masking {
    /// `440604201801150012` → `440604********0012`.
    public static func identifier(_ text: String) -> String {
        let characters = Array(text)
        guard characters.count > 10 else { return String(repeating: "*", count: characters.count) }
        return String(characters.prefix(6)) + String(repeating: "*", count: characters.count - 10)
            + String(characters.suffix(4))
    }

    /// `13800138000` → `138****8000`.
    public static func phone(_ text: String) -> String {
        let characters = Array(text)
        guard characters.count >= 7 else { return String(repeating: "*", count: characters.count) }
        return String(characters.prefix(3)) + String(repeating: "*", count: characters.count - 7)
            + String(characters.suffix(4))
    }

    /// `李小明` → `李**`.
    public static func name(_ text: String) -> String {
        guard let first = text.first else { return text }
        return String(first) + String(repeating: "*", count: text.count - 1)
    }

    /// Masks a subject when it looks like a resident ID or credit code (18 characters), else keeps it.
    public static func subject(_ text: String) -> String {
        text.count == 18 ? identifier(text) : text
    }
}
