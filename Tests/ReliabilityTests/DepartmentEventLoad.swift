import CivilTime
import EventModel
import EventSchemas
import Foundation
import Synchronization
import TestSupport

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// The household registry pushing its events to OneWindow through the two source kinds a
/// department pushes to (``LoadWorld/startEventSources()``), steadily, while their connectors are
/// killed:
///
/// - **births** POSTed to the webhook source over real HTTP, one after another, each retried 200 ms
///   later until it is answered 2xx (a refused connection, a 503, a time-out, an answer lost to a
///   kill). Odd numbers carry a `ce-id` header (`load/birth/N`), even ones none, so their id is the
///   fingerprint of the body: either way a retried POST is the same event, which readers drop by id.
/// - **deaths** dropped as CSV files of ``linesPerFile`` lines into the file-drop source's folder,
///   each written as `NAME.csv.part` and renamed to `NAME.csv` when complete (as a department
///   should, Connectors/README.md).
///
/// Every birth and death has a resident ID of its own, the key the ``Ledger`` counts them by.
final class DepartmentEventLoad: Sendable {
    private struct State {
        var births: [String] = []
        var deaths: [String] = []
        var files = 0
        var retries = 0
        var refused: [String] = []
        var stopping = false
    }
    private let state = Mutex(State())
    let world: UnsafeWorld
    let linesPerFile: Int
    let session = URLSession(configuration: .ephemeral)

    init(world: LoadWorld, linesPerFile: Int = 5) {
        self.world = UnsafeWorld(world)
        self.linesPerFile = linesPerFile
    }

    /// The child resident IDs of the births the webhook answered 2xx.
    var births: [String] { state.withLock { $0.births } }
    /// The resident IDs of the deaths in the files dropped (renamed into place).
    var deaths: [String] { state.withLock { $0.deaths } }
    /// The files dropped.
    var files: Int { state.withLock { $0.files } }
    /// POSTs that failed and were tried again.
    var retries: Int { state.withLock { $0.retries } }
    /// POSTs answered with a 4xx: a bug in the test or the connector, never retried.
    var refused: [String] { state.withLock { $0.refused } }

    /// Asks ``run(birthsPerSecond:filesPerSecond:)`` to return after the POST and the file under way.
    func stop() { state.withLock { $0.stopping = true } }
    private var stopping: Bool { state.withLock { $0.stopping } }

    /// A valid resident ID number: born `birth`, the `number`th of the load (its sequence digits
    /// and, every 900, its birth date's day count make it unique).
    static func residentId(born birth: CivilDate, _ number: Int) -> String {
        let first17 = "440604" + birth.adding(days: number / 900).compact + String(100 + number % 900)
        return first17 + String(ResidentIDNumber.checkCharacter(for: first17)!)
    }

    static let surnames = Array("王李张刘陈杨黄赵吴周")
    static let givenNames = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "子轩", "慧敏"]
    static func name(_ number: Int) -> String {
        String(surnames[number % surnames.count]) + givenNames[(number / surnames.count) % givenNames.count]
    }

    /// A birth as the webhook's body: the catalog's example with a child of its own.
    static func birth(_ number: Int) -> (childId: String, body: Data) {
        let born = CivilDate(year: 2024, month: 1, day: 1)!
        let childId = residentId(born: born, number)
        var body = catalog.schemas["household.birth.registered"]!.examples.first!
        body.set(.string(childId), at: "/child/residentId")
        body.set(.string(name(number)), at: "/child/name")
        body.set(.string(born.adding(days: number / 900).description), at: "/child/birthDate")
        return (childId, body.serialized())
    }

    /// POSTs births at `birthsPerSecond` and drops files at `filesPerSecond` until ``stop()``.
    func run(birthsPerSecond: Double, filesPerSecond: Double) async {
        async let posting: Void = post(perSecond: birthsPerSecond)
        async let dropping: Void = drop(perSecond: filesPerSecond)
        _ = await (posting, dropping)
    }

    private func paced(perSecond: Double, _ body: (Int) async -> Void) async {
        let interval = Duration.milliseconds(Int64(1000 / perSecond))
        let clock = ContinuousClock()
        var next = clock.now
        var number = 1
        while !stopping {
            await body(number)
            number += 1
            next = next.advanced(by: interval)
            if next > clock.now { try? await Task.sleep(until: next, clock: clock) } else { next = clock.now }
        }
    }

    private func post(perSecond: Double) async {
        await paced(perSecond: perSecond) { number in
            let (childId, body) = Self.birth(number)
            var request = URLRequest(url: URL(string: "http://127.0.0.1:\(world.value.webhookPort)/births")!)
            request.httpMethod = "POST"
            request.timeoutInterval = 5
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            if !number.isMultiple(of: 2) { request.setValue("load/birth/\(number)", forHTTPHeaderField: "ce-id") }
            request.httpBody = body
            while true {
                do {
                    let (data, response) = try await session.data(for: request)
                    let status = (response as? HTTPURLResponse)?.statusCode ?? 0
                    if (200..<300).contains(status) {
                        state.withLock { $0.births.append(childId) }
                        return
                    }
                    if (400..<500).contains(status) {
                        state.withLock { $0.refused.append("birth \(number): \(status) \(String(decoding: data, as: UTF8.self))") }
                        return
                    }
                } catch {}
                state.withLock { $0.retries += 1 }
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    private func drop(perSecond: Double) async {
        let folder = world.value.dropDirectory
        let lines = linesPerFile
        await paced(perSecond: perSecond) { number in
            let ids = (0..<lines).map { Self.residentId(born: CivilDate(year: 1940, month: 1, day: 1)!, (number - 1) * lines + $0) }
            let csv =
                "id_no,name,death_date,registered_at\n"
                + ids.enumerated().map { "\($1),\(Self.name($0 + number)),20250106,2025-01-08 09:40:00\n" }.joined()
            let name = String(format: "deaths-%06d.csv", number)
            do {
                let part = folder.appendingPathComponent(name + ".part")
                try Data(csv.utf8).write(to: part)
                try FileManager.default.moveItem(at: part, to: folder.appendingPathComponent(name))
                state.withLock {
                    $0.deaths += ids
                    $0.files += 1
                }
            } catch {
                state.withLock { $0.refused.append("\(name) could not be dropped: \(error)") }
            }
        }
    }
}
