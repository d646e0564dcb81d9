import Foundation
import Synchronization

/// Shared by the test targets and the benchmark: where the repository is, the built executable,
/// free ports, example-shaped department tables.

/// The repository root, found from this file's path.
public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// An error of the test support itself.
public struct SupportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The `onewindow` executable that `swift test` (or `swift build`) built.
public func onewindowExecutable() throws -> URL {
    let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for candidate in [bundle, bundle.deletingLastPathComponent()] {
        let url = candidate.appendingPathComponent("onewindow")
        if FileManager.default.isExecutableFile(atPath: url.path) { return url }
    }
    let fallback = repositoryRoot.appendingPathComponent(".build/debug/onewindow")
    if FileManager.default.isExecutableFile(atPath: fallback.path) { return fallback }
    throw SupportError("the onewindow executable was not built next to \(bundle.path)")
}

/// A free loopback TCP port (bound to port 0, read back, released), never one this test process
/// was given before: the kernel can give a released port again at once, and two tests running
/// side by side were given the same one (a connector's webhook source then could not bind it).
public func freePort() -> Int {
    for _ in 0..<100 {
        let port = anyFreePort()
        if portsGiven.withLock({ $0.insert(port).inserted }) { return port }
    }
    return anyFreePort()
}

private let portsGiven = Mutex<Set<Int>>([])

private func anyFreePort() -> Int {
    let (descriptor, port) = loopbackSocket()
    close(descriptor)
    return port
}

/// A socket listening on a free loopback port, as another process's server would hold it (the
/// caller closes it): for a test of what a server does when its port is taken.
public func listeningSocket() throws -> (descriptor: Int32, port: Int) {
    let (descriptor, port) = loopbackSocket()
    guard descriptor >= 0, port > 0, listen(descriptor, 1) == 0 else {
        if descriptor >= 0 { close(descriptor) }
        throw SupportError("could not listen on a loopback port: errno \(errno)")
    }
    return (descriptor, port)
}

/// A TCP socket bound to a free loopback port (port 0, read back), and that port.
private func loopbackSocket() -> (descriptor: Int32, port: Int) {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
    }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
    }
    return (descriptor, Int(UInt16(bigEndian: address.sin_port)))
}

/// A blocking TCP socket connected to `127.0.0.1:port` (the caller closes it), for clients of
/// the tests and the benchmark that speak HTTP on a plain socket; `receiveTimeout` bounds each
/// `recv`.
public func connectLoopback(port: Int, receiveTimeout seconds: Int = 10) throws -> Int32 {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw SupportError("socket: errno \(errno)") }
    var timeout = timeval(tv_sec: seconds, tv_usec: 0)
    setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        close(descriptor)
        throw SupportError("cannot connect to 127.0.0.1:\(port): errno \(errno)")
    }
    return descriptor
}

import EventLog

/// Every record of a topic, partition by partition in offset order (a group-less read to the end).
public func readTopic(_ log: any EventLog, _ topic: String) async throws -> [LogRecord] {
    var records: [LogRecord] = []
    for description in try await log.describeTopics([topic]) {
        for partition in 0..<description.partitions.count {
            var offset: Int64 = 0
            while true {
                let batch = try await log.read(TopicPartition(topic, partition), from: offset, maxRecords: 1000)
                guard let last = batch.last else { break }
                records += batch
                offset = last.offset + 1
            }
        }
    }
    return records
}

/// Waits for a child process to end without blocking a thread of Swift's cooperative pool
/// (``ChildProcess/waitUntilExit()`` blocks its thread).
public func waitForExit(_ process: ChildProcess, timeout: Duration = .seconds(60)) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    while process.isRunning {
        if clock.now > deadline { throw SupportError("process \(process.processIdentifier) did not exit in time") }
        try await Task.sleep(for: .milliseconds(20))
    }
}
