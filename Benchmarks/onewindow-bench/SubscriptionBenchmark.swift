// SSE fan-out (issue 11): one embedded log, the subscription hub behind a Hummingbird server on
// loopback serving the same `ServerSentEventStream` the gateway serves, and N SSE clients in
// threads of their own on plain sockets (HTTP/1.1, chunked bodies decoded, SSE lines parsed).
import EmbeddedLog
import EventLog
import EventModel
import Foundation
import Histogram
import Hummingbird
import Subscriptions
import Synchronization
import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

struct FanOutResult {
    let subscribers: Int
    let burst: Int
    let burstSeconds: Double
    /// Events delivered to all subscribers together per second, during the burst.
    let deliveredPerSecond: Double
    let rate: Int
    let latencyEvents: Int
    let p50: Double
    let p99: Double
    let max: Double
}

/// Wall-clock microseconds (the appender and the clients share the process, so the same clock).
func nowMicros() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_REALTIME, &spec)
    return UInt64(spec.tv_sec) * 1_000_000 + UInt64(spec.tv_nsec) / 1000
}

/// What every client has received: counts, and latencies in microseconds (up to a minute).
final class FanOutTally: Sendable {
    struct State {
        var connected = 0
        var received: [Int]
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000)
    }
    let state: Mutex<State>
    init(clients: Int) { state = Mutex(State(received: Array(repeating: 0, count: clients))) }
}

/// One SSE client on a blocking socket, in a thread of its own.
final class SSEClient: @unchecked Sendable {
    // @unchecked Sendable: every field but `tally` is used only by the client's own thread.
    let index: Int
    let port: Int
    let tally: FanOutTally
    private var line: [UInt8] = []
    private var latencies: [UInt64] = []
    private var count = 0

    init(index: Int, port: Int, tally: FanOutTally) {
        self.index = index
        self.port = port
        self.tally = tally
    }

    func start() {
        let thread = Thread { self.run() }
        thread.stackSize = 1 << 20
        thread.start()
    }

    private func run() {
        let fd: Int32
        do { fd = try connectLoopback(port: port, receiveTimeout: 0) } catch { fatalError("\(error)") }
        let request = "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var headers: [UInt8] = []
        var inBody = false
        // Chunked transfer decoding: the size line, then that many bytes, then CRLF.
        var sizeLine: [UInt8] = []
        var remaining = 0
        var skipCRLF = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            if !inBody {
                headers.append(contentsOf: buffer[0..<n])
                guard let end = Self.find([13, 10, 13, 10], in: headers) else { continue }
                inBody = true
                tally.state.withLock { $0.connected += 1 }
                decode(Array(headers[(end + 4)...]), &sizeLine, &remaining, &skipCRLF)
            } else {
                decode(Array(buffer[0..<n]), &sizeLine, &remaining, &skipCRLF)
            }
            flush()
        }
        close(fd)
    }

    private func decode(_ bytes: [UInt8], _ sizeLine: inout [UInt8], _ remaining: inout Int, _ skipCRLF: inout Int) {
        var index = 0
        while index < bytes.count {
            if skipCRLF > 0 {
                skipCRLF -= 1
                index += 1
            } else if remaining > 0 {
                let take = min(remaining, bytes.count - index)
                for byte in bytes[index..<(index + take)] { payload(byte) }
                remaining -= take
                index += take
                if remaining == 0 { skipCRLF = 2 }
            } else {
                let byte = bytes[index]
                index += 1
                if byte == 10 {
                    let text = String(decoding: sizeLine.filter { $0 != 13 }, as: UTF8.self)
                    remaining = Int(text, radix: 16) ?? 0
                    sizeLine = []
                } else {
                    sizeLine.append(byte)
                }
            }
        }
    }

    private func payload(_ byte: UInt8) {
        guard byte == 10 else {
            line.append(byte)
            return
        }
        // `data: {...}` lines: the body carries the append time as "t".
        if line.count > 6, line[0] == UInt8(ascii: "d"), line[4] == UInt8(ascii: ":") {
            count += 1
            if let at = Self.find(Array("\"t\":".utf8), in: line) {
                var value: UInt64 = 0
                var position = at + 4
                while position < line.count, line[position] >= 48, line[position] <= 57 {
                    value = value * 10 + UInt64(line[position] - 48)
                    position += 1
                }
                let now = nowMicros()
                latencies.append(now > value ? now - value : 1)
            }
        }
        line.removeAll(keepingCapacity: true)
    }

    private func flush() {
        if latencies.isEmpty && count == 0 { return }
        let (taken, delivered) = (latencies, count)
        latencies.removeAll(keepingCapacity: true)
        count = 0
        tally.state.withLock { state in
            state.received[index] += delivered
            for latency in taken { _ = state.histogram.record(max(1, latency)) }
        }
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        outer: for start in 0...(haystack.count - needle.count) {
            for offset in 0..<needle.count where haystack[start + offset] != needle[offset] { continue outer }
            return start
        }
        return nil
    }
}

/// ~500-byte events whose body carries the append time `t` (microseconds).
private func fanOutRecords(topic: String, first: Int, count: Int) -> [OutgoingRecord] {
    let t = nowMicros()
    return (first..<(first + count)).map { index in
        let body = """
            {"applicationId":"RA-2025-\(index)","service":"restaurant-opening","department":"food-safety",\
            "item":"food-business-licence","dueBy":"2025-03-14","applicant":{"name":"陈美玲",\
            "residentId":"440604198803150027","mobile":"13802761234"},"note":"Lot \(index), Chancheng district, Foshan",\
            "t":\(t)}
            """
        let event = Event(
            id: "fan-\(index)", type: "approval.requested", source: "/onewindow/orchestrator",
            subject: "RA-2025-\(index)", data: Data(body.utf8))
        return CloudEventsBinding.record(for: event, topic: topic)
    }
}

/// `subscribers` SSE clients on one topic of 6 partitions: a burst of `burst` events appended as
/// fast as the log takes them (delivered events/s in total, until every client has them all),
/// then `rate` events/s for `seconds` (p50/p99/max from append to a client's parse of the event).
func benchSSEFanOut(directory: URL, subscribers: Int, burst: Int, rate: Int, seconds: Int) async throws -> FanOutResult {
    let log = try EmbeddedLog(path: directory.appendingPathComponent("fanout.sqlite").path)
    let topic = "bench.fanout.events"
    try await log.createTopics([TopicSpec(name: topic, partitions: 6)])
    let hub = SubscriptionHub(log: log)
    let router = Router()
    router.get("/events") { _, _ -> Response in
        let subscription = try await hub.open(
            SubscriptionRequest(selection: .topics([topic]), group: nil, start: .latest, redacted: true))
        let stream = ServerSentEventStream(subscription, keepAlive: .seconds(5))
        return Response(
            status: .ok,
            headers: [.contentType: ServerSentEvents.contentType, .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                for try await chunk in stream { try await writer.write(ByteBuffer(bytes: chunk)) }
                try await writer.finish(nil)
            })
    }
    let bound = Mutex<Int?>(nil)
    let app = Application(
        router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
        onServerRunning: { channel in bound.withLock { $0 = channel.localAddress?.port } })
    let server = Task { try await app.runService(gracefulShutdownSignals: []) }
    defer { server.cancel() }
    var port: Int?
    while port == nil {
        try await Task.sleep(for: .milliseconds(20))
        port = bound.withLock { $0 }
    }

    let tally = FanOutTally(clients: subscribers)
    for index in 0..<subscribers { SSEClient(index: index, port: port!, tally: tally).start() }
    while tally.state.withLock({ $0.connected }) < subscribers { try await Task.sleep(for: .milliseconds(20)) }
    try await Task.sleep(for: .milliseconds(200))  // every subscription open at the high-water mark

    let clock = ContinuousClock()
    let started = clock.now
    for first in stride(from: 0, to: burst, by: 500) {
        _ = try await log.append(fanOutRecords(topic: topic, first: first, count: min(500, burst - first)))
    }
    while tally.state.withLock({ $0.received.min()! }) < burst { try await Task.sleep(for: .milliseconds(2)) }
    let burstSeconds = (clock.now - started).seconds
    tally.state.withLock { $0.histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000) }

    // The fixed rate: what is due every 5 ms is appended then, never waiting for delivery.
    let total = rate * seconds
    let tick = Duration.milliseconds(5)
    let rateStart = clock.now
    var appended = 0
    var ticks = 0
    while appended < total {
        ticks += 1
        let due = min(total, Int((Double(ticks) * tick.seconds * Double(rate)).rounded()))
        if due > appended {
            _ = try await log.append(fanOutRecords(topic: topic, first: burst + appended, count: due - appended))
            appended = due
        }
        try await Task.sleep(until: rateStart.advanced(by: tick * ticks), clock: clock)
    }
    let deadline = clock.now.advanced(by: .seconds(30))
    while tally.state.withLock({ $0.received.min()! }) < burst + total, clock.now < deadline {
        try await Task.sleep(for: .milliseconds(5))
    }
    let histogram = tally.state.withLock { $0.histogram }
    await log.close()
    return FanOutResult(
        subscribers: subscribers, burst: burst, burstSeconds: burstSeconds,
        deliveredPerSecond: Double(subscribers * burst) / burstSeconds, rate: rate,
        latencyEvents: Int(histogram.totalCount),
        p50: Double(histogram.valueAtPercentile(50)) / 1000, p99: Double(histogram.valueAtPercentile(99)) / 1000,
        max: Double(histogram.max) / 1000)
}
