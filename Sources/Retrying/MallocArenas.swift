#if canImport(Glibc)
    import Glibc
#endif
import Foundation

/// glibc's malloc arenas, capped for OneWindow's processes.
///
/// glibc gives a thread that finds the arena it uses locked an arena of its own, up to eight per
/// core, and keeps what each arena freed for that arena. The orchestrator plans a batch in two
/// halves on two threads at once (and GRDB, Hummingbird and librdkafka run threads of their own),
/// so its allocations spread over many arenas: resident memory with 100,000 open applications
/// went from 192 to 263 MB when planning in halves came. Measured on the 2-core machine
/// (`MALLOC_ARENA_MAX`, 2026-11-30, the orchestrator benchmark): 2 arenas 160 MB but 733–813
/// workflows/s against 930–1,007 (the threads wait for each other's arena), 4 arenas 173 MB and
/// 901–937/s, 8 arenas 196 MB and 970–1,023/s.
/// So four per core: half of glibc's default.
///
/// The two executables, `onewindow` and the benchmark, allocate through jemalloc instead (they
/// link it: Package.swift), which keeps arenas of its own, four per core by default; glibc's
/// allocator then serves nothing and is left alone. The cap is for the processes that do not
/// link jemalloc: the test runner, and any program built on the libraries.
public enum MallocArenas {
    /// Whether this process allocates through jemalloc (it exports `mallctl`).
    public static var jemallocIsTheAllocator: Bool {
        #if canImport(Glibc)
            dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallctl") != nil
        #else
            false
        #endif
    }

    /// Caps the arenas at four per core, unless the environment sets
    /// `MALLOC_ARENA_MAX` (glibc reads it, and it wins). Call it first thing in a process: arenas
    /// made before stay. Does nothing where the C library is not glibc, or where jemalloc is the
    /// allocator.
    /// - Returns: the cap set, or `nil` when none was (the variable is set, jemalloc allocates,
    ///   or not glibc).
    @discardableResult
    public static func limit() -> Int? {
        #if canImport(Glibc)
            if ProcessInfo.processInfo.environment["MALLOC_ARENA_MAX"] != nil || jemallocIsTheAllocator { return nil }
            guard let mallopt else { return nil }
            let cap = 4 * max(1, ProcessInfo.processInfo.activeProcessorCount)
            return mallopt(arenaMax, Int32(cap)) == 1 ? cap : nil
        #else
            return nil
        #endif
    }

    #if canImport(Glibc)
        /// glibc's `mallopt`, found by name: Swift's Glibc module does not bring `malloc.h`.
        /// `nil` where the C library has none (musl).
        private static var mallopt: (@convention(c) (Int32, Int32) -> Int32)? {
            guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return nil }
            return unsafeBitCast(symbol, to: (@convention(c) (Int32, Int32) -> Int32).self)
        }
        /// `M_ARENA_MAX` of glibc's `malloc.h`.
        private static let arenaMax: Int32 = -8
    #endif
}
