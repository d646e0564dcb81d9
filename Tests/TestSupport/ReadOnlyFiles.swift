import Foundation

/// Read-only files that are really read-only for the process under test, also when the tests run
/// as root (CI does, and root writes through `chmod 0444`): issue 12's read-only log and store.
///
/// The process that must meet the read-only files is a child, the real `onewindow` executable,
/// started through ``command(_:_:readOnly:)``:
/// - not root: as it is; `chmod` (``makeReadOnly(_:)``) is enough.
/// - root: as user `nobody` (65534) through `setpriv --reuid --regid --clear-groups`, with the one
///   capability `CAP_DAC_READ_SEARCH` (read any file, search any folder: the build folder may lie
///   under a home that is 0700), which does not let it write anything its permissions refuse.
///   Files the child must write (a bus beside the read-only store) are given to it with
///   ``giveToChild(_:except:)``; the read-only ones stay root's with mode 0444 in a 0555 folder.
/// - root without a working `setpriv`: in a mount namespace of its own (`unshare -m`) where each
///   read-only folder is bind-mounted read-only over itself, so writes there fail with `EROFS`.
/// - neither works (a container without `CAP_SETUID` nor `CAP_SYS_ADMIN`): ``unavailable`` says
///   why, and the tests are skipped with that reason.
public enum ReadOnlyFiles {
    /// How the child is kept from writing.
    public enum Method: Sendable, Equatable, CustomStringConvertible {
        /// Not root: file permissions apply.
        case permissions
        /// Root: the child runs as `nobody` through setpriv with these arguments.
        case unprivilegedUser(setpriv: [String])
        /// Root: the child's folders are bind-mounted read-only in a private mount namespace.
        case readOnlyMount

        public var description: String {
            switch self {
            case .permissions: "file permissions (the tests do not run as root)"
            case .unprivilegedUser(let arguments):
                "the child run as user nobody (`setpriv \(arguments.joined(separator: " "))`), files owned by root, 0444 in 0555 folders"
            case .readOnlyMount: "the child in a private mount namespace (unshare -m) with its folders bind-mounted read-only"
            }
        }

        /// Whether a folder can be writable while a file in it is not (not under a read-only mount).
        public var separatesFileAndFolder: Bool { self != .readOnlyMount }
    }

    /// The user id a root test runs its child as.
    public static let childUser: UInt32 = 65534

    /// The method this machine allows, or why none does.
    public static let probe: Result<Method, ProbeFailure> = findMethod()

    /// Why read-only files cannot be tested here (`nil`: they can), for a test's skip reason.
    public static var unavailable: String? {
        if case .failure(let failure) = probe { return failure.reason }
        return nil
    }

    /// ``unavailable``, printed with `test`'s name and written as `part`'s section of the
    /// reliability report (headed `title`), so a skipped test says why in both places; the test
    /// then cancels itself with it (`Test.cancel`). `nil` when read-only files can be tested.
    public static func reportUnavailable(test: String, part: String, title: String) throws -> String? {
        guard let reason = unavailable else { return nil }
        print("\(test) skipped: \(reason)")
        try ReliabilityRun.report(part: part, markdown: "### \(title)\n\nNot tested on this machine: \(reason)\n")
        return reason
    }

    /// The method in use; call only when ``unavailable`` is `nil`.
    public static var method: Method {
        switch probe {
        case .success(let method): method
        case .failure(let failure): fatalError(failure.reason)
        }
    }

    public struct ProbeFailure: Error, Sendable { public let reason: String }

    /// Makes `folder` and every file in it read-only (files 0444, the folder 0555).
    public static func makeReadOnly(_ folder: URL) throws {
        for file in try FileManager.default.contentsOfDirectory(atPath: folder.path) {
            chmod(folder.appendingPathComponent(file).path, 0o444)
        }
        chmod(folder.path, 0o555)
    }

    /// Makes `folder` and its files writable again (0644, the folder 0755), by the child too.
    public static func makeWritable(_ folder: URL) throws {
        chmod(folder.path, 0o755)
        for file in try FileManager.default.contentsOfDirectory(atPath: folder.path) {
            chmod(folder.appendingPathComponent(file).path, 0o644)
        }
        try giveToChild(folder)
    }

    /// Makes `file` read-only (0444, this process's) in a folder the child can write (its own,
    /// 0755): SQLite then opens the file for reading only. Not under a read-only mount
    /// (``Method/separatesFileAndFolder``).
    public static func makeOnlyFileReadOnly(_ file: URL) throws {
        let folder = file.deletingLastPathComponent()
        try makeReadOnly(folder)
        try giveToChild(folder, except: [file])
        chmod(folder.path, 0o755)
    }

    /// Runs `body` once for each way `file` is read-only here, with the case's name: the file
    /// and its folder (``makeReadOnly(_:)``), then the file alone in a folder the child can write
    /// (``makeOnlyFileReadOnly(_:)``) where the method allows; then makes them writable again
    /// for the child (``makeWritable(_:)``).
    public static func eachReadOnlyCase(of file: URL, _ body: (String) async throws -> Void) async throws {
        let folder = file.deletingLastPathComponent()
        try makeReadOnly(folder)
        try await body("the file and its folder read-only")
        if method.separatesFileAndFolder {
            try makeOnlyFileReadOnly(file)
            try await body("the file read-only, its folder writable")
        }
        try makeWritable(folder)
    }

    /// Gives `folder` and the files in it but `except` to the child's user (root running
    /// setpriv), so the child can write them; nothing otherwise.
    public static func giveToChild(_ folder: URL, except: [URL] = []) throws {
        guard case .success(.unprivilegedUser) = probe else { return }
        let kept = Set(except.map(\.standardizedFileURL.path))
        let paths = [folder.path] + (try FileManager.default.contentsOfDirectory(atPath: folder.path)).map {
            folder.appendingPathComponent($0).standardizedFileURL.path
        }.filter { !kept.contains($0) }
        for path in paths where chown(path, childUser, childUser) != 0 {
            throw SupportError("chown \(path) to \(childUser): \(String(cString: strerror(errno)))")
        }
    }

    /// The executable and arguments that run `executable arguments` so that it cannot write in
    /// the `readOnly` folders (made read-only with ``makeReadOnly(_:)`` beforehand).
    public static func command(_ executable: URL, _ arguments: [String], readOnly: [URL]) -> (URL, [String]) {
        switch method {
        case .permissions:
            return (executable, arguments)
        case .unprivilegedUser(let setprivArguments):
            return (URL(fileURLWithPath: setpriv!), setprivArguments + [executable.path] + arguments)
        case .readOnlyMount:
            // mount --bind then a read-only remount (older util-linux ignores -o ro on --bind).
            let mounts: String = readOnly.map { (folder: URL) -> String in
                let path = shellQuoted(folder.path)
                return "mount --bind \(path) \(path) && mount -o remount,bind,ro \(path) && "
            }.joined()
            let script: String = mounts + "exec \"$0\" \"$@\""
            let head: [String] = ["-m", "--propagation", "private", "/bin/sh", "-c", script, executable.path]
            return (URL(fileURLWithPath: unshare!), head + arguments)
        }
    }

    /// setpriv's arguments, with `CAP_DAC_READ_SEARCH` first (Docker's default capabilities lack
    /// it; then the build folder and the repository must be readable by others).
    static let setprivCandidates = [
        [
            "--reuid=\(childUser)", "--regid=\(childUser)", "--clear-groups", "--inh-caps=+dac_read_search",
            "--ambient-caps=+dac_read_search",
        ],
        ["--reuid=\(childUser)", "--regid=\(childUser)", "--clear-groups"],
    ]

    static let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static let unshare = ["/usr/bin/unshare", "/bin/unshare"].first { FileManager.default.isExecutableFile(atPath: $0) }

    static func shellQuoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    /// Tries each method on a scratch folder: the child must fail to create a file there.
    static func findMethod() -> Result<Method, ProbeFailure> {
        guard geteuid() == 0 else { return .success(.permissions) }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("onewindow-ro-probe-\(UUID())")
        defer {
            chmod(folder.path, 0o755)
            try? FileManager.default.removeItem(at: folder)
        }
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            return .failure(ProbeFailure(reason: "cannot create \(folder.path): \(error)"))
        }
        chmod(folder.path, 0o555)
        let target = folder.appendingPathComponent("written").path
        var reasons: [String] = []
        // The child writes the file; the method works when that fails and the child ran at all.
        func tryMethod(_ executable: String, _ arguments: [String]) -> Bool {
            let process = ChildProcess()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            let error = Pipe()
            process.standardError = error
            process.standardOutput = FileHandle.nullDevice
            do { try process.run() } catch {
                reasons.append("\(executable): \(error)")
                return false
            }
            let message = String(decoding: error.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            while process.isRunning { usleep(10_000) }
            // Status 3: the shell ran and could not write (the probe's own exit); anything else
            // is the method failing to start the child (setpriv: "Operation not permitted").
            if process.terminationStatus == 3 && !FileManager.default.fileExists(atPath: target) { return true }
            reasons.append(
                "\(URL(fileURLWithPath: executable).lastPathComponent) exited \(process.terminationStatus): "
                    + message.trimmingCharacters(in: .whitespacesAndNewlines))
            return false
        }
        // The child must reach the executable, the repository's files (Topics, Rules) and the
        // temporary folder the tests' files are in.
        let executable = (try? onewindowExecutable().path) ?? "/bin/sh"
        let topics = repositoryRoot.appendingPathComponent("Topics").path
        let reach =
            "[ -x \(shellQuoted(executable)) ] && [ -r \(shellQuoted(topics)) ] && [ -x \(shellQuoted(folder.path)) ] || "
            + "{ echo \"user \(childUser) cannot reach \(executable), \(topics) or the temporary folder \(folder.path)\" >&2; exit 5; }; "
        let write = "( : > \(shellQuoted(target)) ) 2>/dev/null && exit 0; exit 3"
        if let setpriv {
            for arguments in setprivCandidates where tryMethod(setpriv, arguments + ["/bin/sh", "-c", reach + write]) {
                return .success(.unprivilegedUser(setpriv: arguments))
            }
        } else {
            reasons.append("setpriv is not installed (util-linux)")
        }
        chmod(folder.path, 0o755)
        if let unshare {
            let path = shellQuoted(folder.path)
            let script = "mount --bind \(path) \(path) && mount -o remount,bind,ro \(path) || exit 4; \(write)"
            if tryMethod(unshare, ["-m", "--propagation", "private", "/bin/sh", "-c", script]) {
                return .success(.readOnlyMount)
            }
        } else {
            reasons.append("unshare is not installed (util-linux)")
        }
        return .failure(
            ProbeFailure(
                reason: "running as root, and neither an unprivileged child (setpriv) nor a read-only bind mount "
                    + "(unshare -m) works here: " + reasons.joined(separator: "; ")))
    }
}
