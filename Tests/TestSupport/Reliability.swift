import Foundation

/// The two sizes of a reliability test (issue 12): the short version `make test` runs, and the full
/// one `make reliability` runs (scripts/reliability.sh sets `ONEWINDOW_RELIABILITY=full`).
///
/// A reliability test asks ``scale(short:full:)`` for its counts (kills, applications, seconds of
/// soak) and, when it has figures, hands them to ``report(part:markdown:)``; under `make reliability`
/// each part's markdown becomes a section of RELIABILITY.md, under `make test` the report is dropped.
public enum ReliabilityRun {
    /// Whether this run is `make reliability`'s full one.
    public static var isFull: Bool {
        ProcessInfo.processInfo.environment["ONEWINDOW_RELIABILITY"] == "full"
    }

    /// `full` under `make reliability`, `short` otherwise.
    public static func scale<T>(short: T, full: T) -> T { isFull ? full : short }

    /// Writes one part's section (markdown, starting with a `###` heading) into the folder
    /// `make reliability` collects (`$ONEWINDOW_RELIABILITY_REPORT_DIR/<part>.md`); does nothing
    /// when that variable is unset (a `make test` run).
    ///
    /// - Parameters:
    ///   - part: a file-name-safe name, e.g. `kills-embedded`; sections appear sorted by it.
    ///   - markdown: the figures, the pass condition and what was seen.
    public static func report(part: String, markdown: String) throws {
        guard let folder = ProcessInfo.processInfo.environment["ONEWINDOW_RELIABILITY_REPORT_DIR"],
              !folder.isEmpty else { return }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try Data(markdown.utf8).write(to: URL(fileURLWithPath: folder).appendingPathComponent("\(part).md"))
    }
}
