import Foundation

/// A TCP proxy on a loopback port in front of a test's broker (a small python3 program), for tests
/// that cut the clients off their broker (Tests/KafkaLogTests/BrokerOutageTests.swift says why a
/// proxy rather than a restarted broker): SIGUSR1 cuts (closes every connection and the listening
/// socket, so new connections are refused), SIGUSR2 restores (listens again).
public final class TestProxy: Sendable {
    public let process: ChildProcess
    /// The port clients connect to.
    public let port: Int

    static let program = #"""
        import os, signal, socket, sys, threading, time
        port, target = int(sys.argv[1]), int(sys.argv[2])
        lock = threading.Lock()
        state = {"listener": None, "connections": set()}

        def pump(source, sink):
            try:
                while True:
                    data = source.recv(65536)
                    if not data:
                        break
                    sink.sendall(data)
            except OSError:
                pass
            for s in (source, sink):
                try:
                    s.close()
                except OSError:
                    pass
            with lock:
                state["connections"].discard(source)
                state["connections"].discard(sink)

        def serve(listener):
            while True:
                try:
                    client, _ = listener.accept()
                except OSError:
                    return
                try:
                    upstream = socket.create_connection(("127.0.0.1", target), 2)
                    upstream.settimeout(None)  # blocking from here: group joins idle for seconds
                except OSError:
                    client.close()
                    continue
                with lock:
                    if state["listener"] is not listener:
                        client.close(); upstream.close()
                        return
                    state["connections"].update((client, upstream))
                threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
                threading.Thread(target=pump, args=(upstream, client), daemon=True).start()

        def listen():
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", port))
            listener.listen(128)
            with lock:
                state["listener"] = listener
            threading.Thread(target=serve, args=(listener,), daemon=True).start()

        def cut(*_):
            with lock:
                listener, state["listener"] = state["listener"], None
                connections, state["connections"] = state["connections"], set()
            if listener is not None:
                try:
                    listener.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                listener.close()
            for s in connections:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

        def restore(*_):
            if state["listener"] is None:
                listen()

        # The test process may block these signals; its children inherit the mask.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM})
        signal.signal(signal.SIGUSR1, cut)
        signal.signal(signal.SIGUSR2, restore)
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        listen()
        # Not signal.pause(): a signal the kernel hands to a pump thread would leave the main
        # thread paused, and Python runs handlers only on the main thread. A short sleep loop
        # lets the main thread run a pending handler within 20 ms whichever thread got it.
        while True:
            time.sleep(0.02)
        """#

    /// Starts the proxy on `port`, forwarding to `127.0.0.1:target`.
    public init(port: Int, target: Int) throws {
        self.port = port
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("onewindow-proxy-\(UUID().uuidString).py")
        try Self.program.write(to: script, atomically: true, encoding: .utf8)
        process = childProcess(URL(fileURLWithPath: "/usr/bin/env"), ["python3", script.path, String(port), String(target)])
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // Python has read the script once it listens (or given up): the file is not needed.
        defer { try? FileManager.default.removeItem(at: script) }
        if waitForListener(port) { return }
        stop()
        throw SupportError("the test proxy did not start on 127.0.0.1:\(port)")
    }

    /// Closes every connection and stops listening; returns once new connections are refused
    /// (at most five seconds: on a loaded machine the proxy can take a moment to run its handler).
    public func cut() async throws {
        kill(process.processIdentifier, SIGUSR1)
        for _ in 0..<250 where accepts() { try await Task.sleep(for: .milliseconds(20)) }
    }

    /// Listens again; returns once a connection is accepted (at most five seconds).
    public func restore() async throws {
        kill(process.processIdentifier, SIGUSR2)
        for _ in 0..<250 where !accepts() { try await Task.sleep(for: .milliseconds(20)) }
    }

    /// Whether a connection to the proxy is accepted now.
    public func accepts() -> Bool { acceptsConnections(port: port) }

    /// Kills the proxy and waits (at most five seconds) for it to be gone.
    public func stop() {
        kill(process.processIdentifier, SIGKILL)
        for _ in 0..<50 where process.isRunning { usleep(100_000) }
    }
}
