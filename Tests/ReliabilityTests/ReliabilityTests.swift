import Foundation
import TestSupport
import Testing

/// Issue 12's measured promises with every process of OneWindow running as in production
/// (``LoadWorld``): kills under load, a broker outage under load, and a soak. One at a time: each
/// runs a dozen processes on a two-core machine, and side by side their figures (and time limits)
/// would measure each other.
///
/// `make test` runs the short versions (its own `swift test --filter ReliabilityTests`, see the
/// Makefile);
/// `make reliability` runs the full ones (`ONEWINDOW_RELIABILITY=full`) and writes their figures
/// into RELIABILITY.md.
@Suite("Reliability under load", .serialized)
struct ReliabilityTests {
    /// Seconds since `start`, one decimal.
    static func seconds(_ duration: Duration) -> String {
        String(format: "%.1f", Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
    }

    /// The ledger's pass condition, recorded as test failures: nothing lost, nothing duplicated,
    /// nothing dead-lettered.
    static func expectClean(_ ledger: Ledger, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(ledger.lost == 0, "lost:\n\(ledger.problems.joined(separator: "\n"))\n\(ledger.table)", sourceLocation: sourceLocation)
        #expect(ledger.duplicated == 0, "duplicated:\n\(ledger.problems.joined(separator: "\n"))\n\(ledger.table)", sourceLocation: sourceLocation)
        #expect(ledger.deadLetters.isEmpty, "dead-lettered:\n\(ledger.deadLetters.prefix(10).joined(separator: "\n"))", sourceLocation: sourceLocation)
    }
}
