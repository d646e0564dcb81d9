import Foundation
import Synchronization

/// A child process of a test, started with `posix_spawn`: the part of Foundation's `Process`
/// the tests use (the same names, so a test reads as before), without its crash.
///
/// Why not `Process`: on Linux, `Process.run()` finds the highest open descriptor by reading
/// `/proc/self/fd` and copies each entry's whole 256-byte name field, past the end of the entry.
/// With more than about 1,350 open descriptors, glibc's 32 KiB directory buffer fills, and for its
/// last entries that copy reads up to 243 bytes beyond the buffer; when the buffer is the last
/// chunk of a thread's malloc heap, those bytes are an unmapped page and the test process dies with
/// SIGSEGV (in `memmove`, under `findMaximumOpenFromProcSelfFD`). The test process holds up to
/// about 1,600 descriptors while the suites run side by side (SQLite pools, brokers' sockets,
/// servers), and about one `make test` in nine crashed so. swift-corelibs-foundation fixed it
/// (pull request 5472) after the Swift 6.3.1 these machines have. A reproduction, 1,500
/// descriptors open and the same loop on a thread of its own: 59 of 257 heap layouts crashed;
/// raising glibc's mmap threshold (so the buffer is mapped with room after it) still left 9,
/// because malloc serves a large request from the heap's top whenever the top has room.
///
/// This launcher does not list descriptors at all: the child closes every descriptor above 2 with
/// glibc's `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34; Debian 12 has 2.36) after its
/// standard streams are set. Unlike `Process`, it starts the child with every signal at its
/// default action and none blocked, as a supervisor does. As with `Process`, the child gets a
/// process group of its own (`scripts/reap.py`, which `make test` runs the tests under, stops what
/// is left of those groups when the tests end), and a stream left at its default is the test
/// process's own, while `nil` is `/dev/null`. Its exit is reaped by a thread of its own, so ``isRunning`` turns false by itself
/// and nothing blocks Swift's cooperative pool.
public final class ChildProcess: @unchecked Sendable {
    /// How the child ended.
    public enum TerminationReason: Sendable { case exit, uncaughtSignal }

    /// The program to run (not looked up on `PATH`: give `/usr/bin/env` and the name for that).
    public var executableURL: URL?
    public var arguments: [String] = []
    /// The child's whole environment; `nil`: the test process's.
    public var environment: [String: String]?
    /// Where the child starts; `nil`: the test process's directory.
    public var currentDirectoryURL: URL?
    /// A `FileHandle` or a `Pipe` (its reading end); `nil` or `FileHandle.nullDevice`:
    /// `/dev/null`. The default is the test process's standard input.
    public var standardInput: Any? = FileHandle.standardInput {
        willSet { precondition(newValue == nil || newValue is Pipe || newValue is FileHandle) }
    }
    /// A `FileHandle` or a `Pipe` (its writing end, closed in the test process once the child
    /// runs, so reading it ends when the child's copy closes); `nil` or `FileHandle.nullDevice`:
    /// `/dev/null`.
    public var standardOutput: Any? = FileHandle.standardOutput {
        willSet { precondition(newValue == nil || newValue is Pipe || newValue is FileHandle) }
    }
    /// As ``standardOutput``.
    public var standardError: Any? = FileHandle.standardError {
        willSet { precondition(newValue == nil || newValue is Pipe || newValue is FileHandle) }
    }

    private struct State {
        var pid: pid_t = 0
        var running = false
        var status: Int32 = 0
        var reason: TerminationReason = .exit
    }
    private let state = Mutex(State())
    private let exited = DispatchGroup()

    public init() {}

    /// The child's process id (0 before ``run()``).
    public var processIdentifier: Int32 { state.withLock { $0.pid } }

    /// Whether the child was started and has not been reaped yet.
    public var isRunning: Bool { state.withLock { $0.running } }

    /// The exit status, or the signal that ended the child; -1 when its end could not be read
    /// (`waitpid` failed). Only after it ended.
    public var terminationStatus: Int32 {
        state.withLock {
            precondition($0.pid > 0 && !$0.running, "terminationStatus of a child that has not ended")
            return $0.status
        }
    }

    /// Whether the child exited or a signal ended it. Only after it ended.
    public var terminationReason: TerminationReason {
        state.withLock {
            precondition($0.pid > 0 && !$0.running, "terminationReason of a child that has not ended")
            return $0.reason
        }
    }

    /// Starts the child. Throws, naming the program, when it cannot be started (no such file,
    /// not executable, a directory that does not exist).
    public func run() throws {
        guard let executable = executableURL?.path else { throw SupportError("a child process without a program") }
        precondition(state.withLock { $0.pid == 0 }, "a ChildProcess runs once")
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var nullDevice: FileHandle?
        func descriptor(_ stream: Any?, reading: Bool) throws -> Int32 {
            switch stream {
            case let pipe as Pipe:
                return reading ? pipe.fileHandleForReading.fileDescriptor : pipe.fileHandleForWriting.fileDescriptor
            // Foundation's null device is a handle without a descriptor (-1), not /dev/null opened.
            case let handle as FileHandle where handle !== FileHandle.nullDevice: return handle.fileDescriptor
            default:
                if nullDevice == nil { nullDevice = try FileHandle(forUpdating: URL(fileURLWithPath: "/dev/null")) }
                return nullDevice!.fileDescriptor
            }
        }
        let streams: [(Any?, Int32)] = [(standardInput, 0), (standardOutput, 1), (standardError, 2)]
        for (stream, target) in streams {
            let source = try descriptor(stream, reading: target == 0)
            // A descriptor given as its own target (the test process's stream) is inherited as is.
            if source != target { try check(posix_spawn_file_actions_adddup2(&actions, source, target), "dup2") }
        }
        if let directory = currentDirectoryURL?.path {
            try check(Self.addChangeDirectory(&actions, directory), "chdir to \(directory)")
        }
        try check(Self.addCloseFrom(&actions, 3), "closefrom")

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Started as a supervisor or a shell starts a program: every signal at its default action
        // and none blocked. Without this the child would inherit what the test process ignores at
        // that moment (the signal sources of in-process services set SIGINT and SIGTERM to
        // SIG_IGN), and the starting thread's mask: a child started without this from a thread
        // a test began had SigBlk fffffffe3bfbea27, nearly every signal blocked.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal: Int32 in 1...31 where signal != SIGKILL && signal != SIGSTOP { sigaddset(&defaults, signal) }  // the standard ones
        var nothingBlocked = sigset_t()
        sigemptyset(&nothingBlocked)
        try check(posix_spawnattr_setsigdefault(&attributes, &defaults), "setsigdefault")
        try check(posix_spawnattr_setsigmask(&attributes, &nothingBlocked), "setsigmask")
        let flags = POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK
        try check(posix_spawnattr_setflags(&attributes, Int16(flags)), "setflags")

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        let environmentPairs =
            (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0)=\($1)") } + [nil]
        defer { for pair in environmentPairs { free(pair) } }

        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, &attributes, argv, environmentPairs)
        guard spawned == 0 else {
            // The child's failures (its directory, the program) come back as one errno: say which.
            var isDirectory: ObjCBool = false
            let place =
                currentDirectoryURL.map {
                    FileManager.default.fileExists(atPath: $0.path, isDirectory: &isDirectory) && isDirectory.boolValue
                        ? " in \($0.path)" : " in \($0.path), which is not a directory"
                } ?? ""
            throw SupportError(
                "cannot start \(executable)\(place): \(String(cString: strerror(spawned))) (errno \(spawned))")
        }
        state.withLock {
            $0.pid = pid
            $0.running = true
        }
        // The test process's copies of the pipes' child ends: closed, so a reader sees the end.
        if let pipe = standardInput as? Pipe { try? pipe.fileHandleForReading.close() }
        if let pipe = standardOutput as? Pipe { try? pipe.fileHandleForWriting.close() }
        if let pipe = standardError as? Pipe, (standardOutput as? Pipe) !== pipe {
            try? pipe.fileHandleForWriting.close()
        }
        exited.enter()
        let child = pid
        Thread { [self] in reap(child) }.start()
    }

    /// Blocks the calling thread until the child has ended (not for a task of the cooperative
    /// pool: use `waitForExit`).
    public func waitUntilExit() {
        precondition(state.withLock { $0.pid > 0 }, "waitUntilExit before run")
        exited.wait()
    }

    private func reap(_ pid: pid_t) {
        var status: Int32 = 0
        var result = waitpid(pid, &status, 0)
        while result == -1 && errno == EINTR { result = waitpid(pid, &status, 0) }
        let signal = status & 0x7f
        state.withLock {
            if result == -1 {
                // The exit is lost (ECHILD: the child was reaped elsewhere, as with SIGCHLD
                // ignored): say so with a status no process exits with, never as a success.
                $0.status = -1
                $0.reason = .exit
            } else if signal == 0 {
                $0.status = (status >> 8) & 0xff
                $0.reason = .exit
            } else {
                $0.status = signal
                $0.reason = .uncaughtSignal
            }
            $0.running = false
        }
        exited.leave()
    }

    private func check(_ result: Int32, _ what: String) throws {
        guard result == 0 else {
            throw SupportError(
                "cannot start \(executableURL?.path ?? "?"): posix_spawn's \(what) failed: \(String(cString: strerror(result)))"
            )
        }
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` and `…_addchdir_np`, found by name:
    /// Swift's Glibc module does not declare them.
    private static let addCloseFromFunction = glibcFunction(
        "posix_spawn_file_actions_addclosefrom_np",
        as: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    private static let addChangeDirectoryFunction = glibcFunction(
        "posix_spawn_file_actions_addchdir_np",
        as: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32).self)

    private static func glibcFunction<Function>(_ name: String, as type: Function.Type) -> Function? {
        dlsym(UnsafeMutableRawPointer(bitPattern: 0), name).map { unsafeBitCast($0, to: type) }
    }

    private static func addCloseFrom(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ lowest: Int32)
        -> Int32
    {
        addCloseFromFunction.map { $0(actions, lowest) } ?? ENOSYS
    }

    private static func addChangeDirectory(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ path: String)
        -> Int32
    {
        guard let function = addChangeDirectoryFunction else { return ENOSYS }
        return path.withCString { function(actions, $0) }
    }
}
