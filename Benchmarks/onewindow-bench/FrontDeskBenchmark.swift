// The front desk through HTTP (issue 11): a real gateway (`Gateway`, as `onewindow gateway` runs
// it: its HTTP server and progress loop in one ServiceGroup) on an embedded log in a temporary
// folder, asking the real key store and access policy of `onewindow grants`; N clients on loopback,
// each a plain-socket HTTP/1.1 keep-alive connection in a thread of its own, posting valid
// restaurant applications (distinct application numbers) with a real key, one request at a time.
import AccessControl
import Audit
import EmbeddedLog
import EventLog
import EventModel
import EventSchemas
import Foundation
import Gateway
import Histogram
import Logging
import ServiceLifecycle
import Synchronization
import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

struct FrontDeskResult {
    let clients: Int
    let submissions: Int
    let accepted: Int
    let seconds: Double
    /// Accepted submissions per second, from the first request sent to the last answer read.
    var acceptedPerSecond: Double { Double(accepted) / seconds }
    let p50: Double
    let p99: Double
    let max: Double
    /// Records on the application topic afterwards (each accepted submission is one).
    let recordsOnTopic: Int64
    /// The first answer that was not a 202, if any (status and body).
    let firstRefusal: String?
    /// CPU time (user and system, every thread) the whole process spent from the first request to
    /// the last answer: the gateway and the clients, which run in the same process.
    let cpuSeconds: Double
    /// The part of it the client threads spent (each thread's own CPU clock), sending and reading.
    let clientCPUSeconds: Double
    /// Process CPU milliseconds per submission, clients included: comparable between runs on a
    /// machine others load, where the wall time is not.
    var cpuMillisecondsPerSubmission: Double { cpuSeconds * 1000 / Double(Swift.max(1, submissions)) }
    /// The same without the clients' share: what the gateway spends on one submission.
    var gatewayCPUMillisecondsPerSubmission: Double {
        (cpuSeconds - clientCPUSeconds) * 1000 / Double(Swift.max(1, submissions))
    }
}

/// What the clients tally: accepted answers, latencies (microseconds), the first other answer.
final class FrontDeskTally: Sendable {
    struct State {
        var accepted = 0
        var answered = 0
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000)
        var firstRefusal: String?
        var failure: String?
        /// The client threads' own CPU time, in seconds.
        var clientCPUSeconds = 0.0
    }
    let state = Mutex(State())
}

/// One front-desk client: sends its requests one after the other on one keep-alive connection and
/// reads each answer (headers and a `Content-Length` body) before the next.
final class FrontDeskClient: @unchecked Sendable {
    // @unchecked Sendable: `requests` is read only, and only by the client's own thread.
    let port: Int
    let requests: [[UInt8]]
    let tally: FrontDeskTally
    let done: @Sendable () -> Void

    init(port: Int, requests: [[UInt8]], tally: FrontDeskTally, done: @escaping @Sendable () -> Void) {
        self.port = port
        self.requests = requests
        self.tally = tally
        self.done = done
    }

    func start() {
        let thread = Thread {
            do { try self.run() } catch { self.tally.state.withLock { $0.failure = $0.failure ?? "\(error)" } }
            self.done()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    private func run() throws {
        let fd = try connectLoopback(port: port, receiveTimeout: 30)
        defer { close(fd) }
        var noDelay: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, socklen_t(MemoryLayout<Int32>.size))
        var buffer = [UInt8](repeating: 0, count: 16_384)
        var pending: [UInt8] = []
        var latencies: [UInt64] = []
        var accepted = 0
        var refusal: String?
        for request in requests {
            let sentAt = nowMicros()
            var offset = 0
            while offset < request.count {
                let sent = request.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, 0) }
                guard sent > 0 else { throw Failure(description: "send: errno \(errno)") }
                offset += sent
            }
            // The answer: headers, then Content-Length bytes of body.
            var status = 0
            var bodyLength = -1
            var headerEnd = -1
            while true {
                if headerEnd < 0, let end = SSEClient.find([13, 10, 13, 10], in: pending) {
                    headerEnd = end
                    let head = String(decoding: pending[..<end], as: UTF8.self)
                    let lines = head.split(separator: "\r\n")
                    status = lines.first.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
                    bodyLength =
                        lines.first { $0.lowercased().hasPrefix("content-length:") }
                        .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
                }
                if headerEnd >= 0, pending.count >= headerEnd + 4 + bodyLength { break }
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { throw Failure(description: "the gateway closed the connection (recv \(n), errno \(errno))") }
                pending.append(contentsOf: buffer[0..<n])
            }
            latencies.append(max(1, nowMicros() - sentAt))
            let total = headerEnd + 4 + bodyLength
            if status == 202 {
                accepted += 1
            } else if refusal == nil {
                refusal = "\(status) \(String(decoding: pending[(headerEnd + 4)..<total].prefix(400), as: UTF8.self))"
            }
            pending.removeFirst(total)
        }
        let threadCPU = threadCPUSeconds()
        tally.state.withLock { state in
            state.clientCPUSeconds += threadCPU
            state.accepted += accepted
            state.answered += requests.count
            for latency in latencies { _ = state.histogram.record(latency) }
            if state.firstRefusal == nil { state.firstRefusal = refusal }
        }
    }
}

/// `submissions` restaurant applications posted to `POST /applications` by `clients` concurrent
/// clients (the submissions split evenly among them), each application a distinct number.
func benchFrontDesk(directory: URL, clients: Int, submissions: Int) async throws -> FrontDeskResult {
    let folder = directory.appendingPathComponent("front-desk")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let setup = try OrchestratorSetup.load()
    let log = try EmbeddedLog(path: folder.appendingPathComponent("bus.sqlite").path)
    _ = try await log.createTopics(setup.catalog.topicSpecs)

    // The real key store and policy, with one front-desk key as `onewindow grants create` makes it.
    let keys = try KeyStore(path: folder.appendingPathComponent("access.sqlite").path)
    let audit = try AuditLog(path: folder.appendingPathComponent("audit.sqlite").path)
    let key = try await keys.create(
        Principal(name: "front-desk", kind: .downstream, grants: [.submit(workflow: "restaurant-opening"), .progress]),
        audit: audit, actor: "onewindow-bench"
    ).apiKey
    var logger = Logger(label: "onewindow-bench.gateway")
    logger.logLevel = .warning
    let gateway = try Gateway(
        log: log, catalog: setup.catalog, rules: setup.rules, storePath: folder.appendingPathComponent("gateway.sqlite").path,
        viewPath: nil, access: AccessPolicy(keys: keys, audit: audit, logger: logger), bus: "embedded:bench", logger: logger)
    let (ports, portContinuation) = AsyncStream<Int>.makeStream()
    let group = ServiceGroup(
        services: try gateway.services(host: "127.0.0.1", port: 0) { portContinuation.yield($0) }, logger: logger)
    let server = Task { try await group.run() }
    var portIterator = ports.makeAsyncIterator()
    guard let port = await portIterator.next() else { throw FrontDeskClient.Failure(description: "the gateway did not start") }

    // Every request made before the clock starts: the clients only send and read.
    let submitted = Date()
    let requests: [[UInt8]] = (0..<submissions).map { index in
        let application = RestaurantExample.application(
            id: String(format: "RA-2026-%06d", index % 1_000_000), submitted: submitted)
        let body = JSONValue.object(["workflow": .string("restaurant-opening"), "application": application]).serialized()
        var request = Array(
            "POST /applications HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(key)\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n"
                .utf8)
        request.append(contentsOf: body)
        return request
    }
    let tally = FrontDeskTally()
    let (finished, finishedContinuation) = AsyncStream<Void>.makeStream()
    let started = ContinuousClock.now
    let cpuStart = processCPUSeconds()
    for client in 0..<clients {
        let share = Array(stride(from: client, to: submissions, by: clients).map { requests[$0] })
        FrontDeskClient(port: port, requests: share, tally: tally) { finishedContinuation.yield() }.start()
    }
    var done = 0
    for await _ in finished {
        done += 1
        if done == clients { break }
    }
    let seconds = (ContinuousClock.now - started).seconds
    let cpuSeconds = processCPUSeconds() - cpuStart
    let state = tally.state.withLock { $0 }
    if let failure = state.failure { throw FrontDeskClient.Failure(description: "a front-desk client failed: \(failure)") }

    let topic = "application.restaurant.submitted"
    var records: Int64 = 0
    for partition in 0..<(setup.catalog.topicSpecs.first { $0.name == topic }?.partitions ?? 0) {
        records += try await log.watermarks(TopicPartition(topic, partition)).high
    }
    await group.triggerGracefulShutdown()
    _ = try? await server.value
    await log.close()
    return FrontDeskResult(
        clients: clients, submissions: submissions, accepted: state.accepted, seconds: seconds,
        p50: Double(state.histogram.valueAtPercentile(50)) / 1000, p99: Double(state.histogram.valueAtPercentile(99)) / 1000,
        max: Double(state.histogram.max) / 1000, recordsOnTopic: records, firstRefusal: state.firstRefusal,
        cpuSeconds: cpuSeconds, clientCPUSeconds: state.clientCPUSeconds)
}
