import Foundation
import Retrying
import Testing

/// The processes cap glibc's malloc arenas at four per core, unless `MALLOC_ARENA_MAX` says
/// otherwise (``MallocArenas``).
@Suite("Malloc arenas")
struct MallocArenasTests {
    /// The environment is read, never changed: `setenv` while other tests start processes
    /// (Foundation's `Process.run` copies the environment) crashed the test process.
    @Test("The cap is four arenas per core and glibc takes it; with MALLOC_ARENA_MAX in the environment nothing is set")
    func cap() {
        let expected =
            ProcessInfo.processInfo.environment["MALLOC_ARENA_MAX"] == nil
            ? 4 * max(1, ProcessInfo.processInfo.activeProcessorCount) : nil
        #expect(MallocArenas.limit() == expected)
    }
}
