import Foundation
import Retrying
import Testing

/// The processes cap glibc's malloc arenas at four per core, unless `MALLOC_ARENA_MAX` says
/// otherwise (``MallocArenas``).
@Suite("Malloc arenas", .serialized)
struct MallocArenasTests {
    @Test("The cap is four arenas per core; MALLOC_ARENA_MAX in the environment wins and nothing is set")
    func cap() {
        let previous = ProcessInfo.processInfo.environment["MALLOC_ARENA_MAX"]
        defer {
            if let previous { setenv("MALLOC_ARENA_MAX", previous, 1) } else { unsetenv("MALLOC_ARENA_MAX") }
        }
        setenv("MALLOC_ARENA_MAX", "4", 1)
        #expect(MallocArenas.limit() == nil)
        unsetenv("MALLOC_ARENA_MAX")
        #expect(MallocArenas.limit() == 4 * max(1, ProcessInfo.processInfo.activeProcessorCount))
    }
}
