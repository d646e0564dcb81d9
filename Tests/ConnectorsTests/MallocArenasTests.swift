import Foundation
import Retrying
import TestSupport
import Testing

/// The processes cap glibc's malloc arenas at four per core, unless `MALLOC_ARENA_MAX` says
/// otherwise (``MallocArenas``).
@Suite("Malloc arenas")
struct MallocArenasTests {
    /// The environment is read, never changed: `setenv` while other tests start processes
    /// (starting a child copies the environment) crashed the test process.
    @Test("The cap is four arenas per core and glibc takes it; with MALLOC_ARENA_MAX in the environment nothing is set")
    func cap() {
        let expected =
            ProcessInfo.processInfo.environment["MALLOC_ARENA_MAX"] == nil
            ? 4 * max(1, ProcessInfo.processInfo.activeProcessorCount) : nil
        #expect(!MallocArenas.jemallocIsTheAllocator, "the test runner does not link jemalloc")
        #expect(MallocArenas.limit() == expected)
    }

    @Test("The onewindow executable allocates through jemalloc: it links the library")
    func executableLinksJemalloc() throws {
        let ldd = ChildProcess()
        ldd.executableURL = URL(fileURLWithPath: "/usr/bin/ldd")
        ldd.arguments = [try onewindowExecutable().path]
        let output = Pipe()
        ldd.standardOutput = output
        try ldd.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        ldd.waitUntilExit()
        #expect(ldd.terminationStatus == 0)
        #expect(text.contains("libjemalloc.so"), "ldd lists: \(text)")
    }
}
