import ConfigFiles
import EventSchemas
import Foundation
import Testing
import TestSupport

extension BrokenConfigFile {
    /// Checks an error against the expectation: the file and line, then the message.
    func check(_ error: any Error, file: String) {
        guard let error = error as? ConfigFileError else {
            Issue.record("\(self): not a ConfigFileError: \(error)")
            return
        }
        #expect(error.file == file, "\(self)")
        #expect(error.line == line, "\(self): \(error)")
        #expect(error.description.hasPrefix("\(file):\(line):"), "\(self): \(error)")
        #expect(error.description.contains(message), "\(self): \(error)")
    }
}

@Suite("The catalog file, read strictly")
struct CatalogFileTests {
    static let broken = BrokenConfigFile.all(in: "catalogs")

    @Test func theCorpusIsThere() {
        #expect(Self.broken.count >= 5)
    }

    /// Each broken catalog is refused with the file, the line and the message its first line states.
    @Test(arguments: broken)
    func aBrokenCatalogIsRefusedWithFileLineAndMessage(_ broken: BrokenConfigFile) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("catalog-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.copyItem(
            atPath: broken.path, toPath: directory.appendingPathComponent("catalog.yaml").path)
        // The schemas the corpus names, so that only the broken part can fail.
        try FileManager.default.copyItem(
            at: schemasDirectory.appendingPathComponent("schemas"), to: directory.appendingPathComponent("schemas"))
        do {
            _ = try TopicCatalog.load(from: directory)
            Issue.record("\(broken) was accepted")
        } catch {
            broken.check(error, file: directory.appendingPathComponent("catalog.yaml").path)
        }
    }

    @Test func nearestKeys() {
        #expect(KeySuggestion.nearest(to: "intervall", in: ["interval", "batch", "id"]) == "interval")
        #expect(KeySuggestion.nearest(to: "nmae", in: ["name", "department"]) == "name", "a swap is one edit")
        #expect(KeySuggestion.nearest(to: "inboxtable", in: ["inboxTable", "decisionsTable"]) == "inboxTable")
        #expect(KeySuggestion.nearest(to: "colour", in: ["name", "state", "sinks"]) == nil, "too far for a typo")
        #expect(KeySuggestion.editDistance("kitten", "sitting") == 3)
    }

    @Test func lineNumbersOfValues() throws {
        let root = try ConfigNode.parse("a: 1\nb:\n  - x\n  - {c: true}\n", file: "f.yaml")
        let places = root.places()
        #expect(places["a"] == Place(line: 1, column: 4))
        #expect(places["b[1].c"]?.line == 4)
        let map = try root.mapping(keys: ["a", "b"])
        #expect(try map.require("a").int() == 1)
        #expect(throws: ConfigFileError.self) { try map.require("a").bool() }
        #expect(try map.require("b").list()[1].mapping().optionalBool("c") == true)
    }
}
