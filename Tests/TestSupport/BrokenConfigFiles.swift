import Foundation

/// A broken file of `Tests/BrokenConfigFiles/FOLDER` and the error its first line says it must
/// give: `# expect: LINE: TEXT` (the line of the problem and a text its message contains).
public struct BrokenConfigFile: CustomStringConvertible, Sendable {
    /// The file's path.
    public let path: String
    /// The line the error must name; 0 when the file has no `# expect:` line (so its test fails).
    public let line: Int
    /// A text the error's message must contain.
    public let message: String

    /// The file's name, e.g. `misspelt-key.yaml`.
    public var name: String { URL(fileURLWithPath: path).lastPathComponent }
    public var description: String { name }

    /// Every `.yaml` file of `Tests/BrokenConfigFiles/<folder>`, sorted by name.
    public static func all(in folder: String) -> [BrokenConfigFile] {
        let directory = repositoryRoot.appendingPathComponent("Tests/BrokenConfigFiles/\(folder)")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".yaml") }.sorted().map { name in
            let path = directory.appendingPathComponent(name).path
            let first = (try? String(contentsOfFile: path, encoding: .utf8))?.split(separator: "\n").first ?? ""
            guard first.hasPrefix("# expect: ") else { return BrokenConfigFile(path: path, line: 0, message: "") }
            let expectation = first.dropFirst("# expect: ".count)
            guard let colon = expectation.firstIndex(of: ":"), let line = Int(expectation[..<colon]) else {
                return BrokenConfigFile(path: path, line: 0, message: "")
            }
            let message = expectation[expectation.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            return BrokenConfigFile(path: path, line: line, message: message)
        }
    }
}
