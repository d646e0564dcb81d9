import Foundation

// The libFuzzer entry point of `onewindow-fuzz` (see Fuzz/README.md). There is no `main` here:
// built with `--sanitize=fuzzer`, the executable takes libFuzzer's own `main`, which parses the
// command line (corpus folders, -max_total_time, …) and calls this function with each input.
// The target is chosen by the environment variable FUZZ_TARGET (one of `FuzzTarget.all`), so one
// executable serves every target and the instrumented modules are compiled and linked once.

/// libFuzzer calls this with every input; a trap, a failed `precondition` or an address
/// sanitizer report here is a finding (libFuzzer writes the input to `crash-<sha1>`).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = size == 0 ? Data() : Data(bytes: data!, count: size)
    FuzzTarget.selected.run(input)
    return 0
}

/// One fuzz target: a name (the corpus folder `Fuzz/corpus/<name>/`) and the function fed.
struct FuzzTarget: Sendable {
    let name: String
    /// What it exercises, for `make fuzz`'s listing and the README.
    let summary: String
    let run: @Sendable (Data) -> Void

    static let all: [FuzzTarget] = [
        FuzzTarget(name: "json", summary: "JSONValue.parse, and re-parsing what it serialises", run: Targets.json),
        FuzzTarget(
            name: "schema", summary: "every topic schema's validator on a JSON body, and JSONSchema compiling a schema",
            run: Targets.schema),
        FuzzTarget(
            name: "identifiers", summary: "resident ID number, unified social credit code, mobile number",
            run: Targets.identifiers),
        FuzzTarget(
            name: "mapping", summary: "the connectors' field mappings and conversions (Connectors/*.yaml)",
            run: Targets.mapping),
        FuzzTarget(name: "csv", summary: "the file-drop source's CSV reader, then a connector mapping", run: Targets.csv),
        FuzzTarget(
            name: "condition", summary: "the rule condition parser, its canonical form, evaluation and schema check",
            run: Targets.condition),
    ]

    /// The target FUZZ_TARGET names; the process ends with status 2 and the list when it names none.
    static let selected: FuzzTarget = {
        let name = ProcessInfo.processInfo.environment["FUZZ_TARGET"] ?? ""
        if let target = all.first(where: { $0.name == name }) { return target }
        let names = all.map(\.name).joined(separator: ", ")
        FileHandle.standardError.write(
            Data("onewindow-fuzz: set FUZZ_TARGET to one of: \(names) (found '\(name)')\n".utf8))
        exit(2)
    }()
}
