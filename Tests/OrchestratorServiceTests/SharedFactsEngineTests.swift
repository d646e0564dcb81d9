import Bus
import CivilTime
import EventModel
import EventSchemas
import Foundation
import Orchestrator
import OrchestratorService
import SharedView
import TestSupport
import Testing

@Suite("Zero-document materials through the engine: facts from the shared data view, read before the transaction")
struct SharedFactsEngineTests {
    static let graduateId = "430102200206100467"
    /// A graduate the household registry knows but the social security bureau does not.
    static let unenrolledId = ResidentIDNumber.make(region: "430102", birthDate: (2002, 9, 14), sequence: 8)
    static let employer = "91440604MA51R7T3X1"

    static func graduate(_ id: String, residentId: String = graduateId, submitted: Date = Repo.at("2026-03-02", 9, 20))
        -> JSONValue
    {
        .object([
            "applicationId": .string(id), "submittedAt": .string(ChinaTime.rfc3339(submitted)),
            "applicant": .object(["name": "周雨桐", "residentId": .string(residentId), "mobile": "15874001234"]),
            "university": "中南大学", "graduationDate": "2025-06-20", "degree": "bachelor",
            "employerCreditCode": .string(employer), "toAddress": "佛山市禅城区季华五路22号人才公寓5栋803",
            "materials": .array([]),
        ])
    }

    /// The departments publish their facts on the bus through the validating publisher: both
    /// graduates' household records, the first one's social insurance enrolment, the employer's
    /// licence (four facts of the view).
    static func publishFacts(_ publisher: Publisher) async throws {
        func publish(_ type: String, _ id: String, _ body: JSONValue, at time: Date) async throws {
            _ = try await publisher.publish(
                Event(id: id, type: type, source: "test-department", subject: nil, time: time, data: body.serialized()))
        }
        let registered = Repo.at("2026-02-20", 10)
        let enrolled = Repo.at("2026-01-27", 11)
        let licensed = Repo.at("2024-05-10")
        try await publish(
            "household.member.changed", "hh-0001",
            DepartmentFacts.memberChanged(graduateId, name: "周雨桐", household: "440604012345", at: registered),
            at: registered)
        try await publish(
            "household.member.changed", "hh-0002",
            DepartmentFacts.memberChanged(unenrolledId, name: "罗嘉欣", household: "440604012346", at: registered),
            at: registered)
        try await publish(
            "socialsecurity.enrolment.registered", "si-0001",
            DepartmentFacts.enrolment(graduateId, name: "周雨桐", employer: employer, from: "2026-02-01", at: enrolled),
            at: enrolled)
        try await publish(
            "market.business.registered", "mk-0001",
            DepartmentFacts.business(
                employer, name: "佛山市禅城区云帆软件有限公司", representative: ("何志勇", "440604199308220247"), at: licensed),
            at: licensed)
    }

    /// The departments' facts published on the bench's bus, and the shared view's engine ingesting
    /// them into a view beside the bench's store.
    func viewOfPublishedFacts(_ bench: Bench) async throws -> SharedViewStore {
        try await Self.publishFacts(bench.publisher)
        let store = try SharedViewStore(path: bench.directory.appendingPathComponent("view.sqlite").path)
        let ingest = SharedViewEngine(
            store: store, rules: Repo.view, log: bench.log, catalog: Repo.catalog, clock: bench.clock)
        var ingested = 0
        try await SharedViewEngine.readToEnd(log: bench.log, topics: Repo.view.topics) {
            ingested += try await ingest.process($0)
        }
        #expect(ingested == 4)
        return store
    }

    /// The view's usage log of `subject`, one line per read: `reader reason kind event-ids` (`-`
    /// for a read that found nothing).
    func reads(_ view: SharedViewStore, of subject: String) async throws -> [String] {
        try await view.usage(of: subject).map {
            let ids = $0.eventIds.isEmpty ? "-" : $0.eventIds.joined(separator: ",")
            return "\($0.reader) \($0.reason) \($0.kind ?? "-") \(ids)"
        }
    }

    @Test("every kind a sharedFact: material may name is a kind Rules/shared-view.yaml defines")
    func kindsAgree() {
        let undefined = Set(SharedFactKinds.all).subtracting(Repo.view.kinds.keys)
        #expect(
            undefined.isEmpty,
            """
            SharedFactKinds.all (Sources/Orchestrator/Rules/Workflow.swift) names \(undefined.sorted()), which \
            Rules/shared-view.yaml does not define: a workflow could ask the view for a kind it never holds; \
            define them in the view's rules or remove them from the list
            """)
    }

    @Test("A graduate whose facts the view holds submits nothing; one without them is asked for exactly those")
    func graduatesThroughTheEngine() async throws {
        let bench = try await Bench()
        let view = try await viewOfPublishedFacts(bench)
        let engine = try OrchestratorEngine(
            store: OrchestratorStore(path: bench.storePath), rules: Repo.rules, calendar: Repo.calendar, log: bench.log,
            catalog: Repo.catalog, clock: bench.clock, sharedFacts: SharedViewFacts(view: view))
        try await bench.submit(Self.graduate("GR-2026-000011"), type: "application.graduate-registration.submitted")
        try await bench.pump(engine)

        let requests = try await bench.requests()
        #expect(requests.count == 1)
        let materials = try #require(requests.first?.body[pointer: "/materials"]?.arrayValue)
        #expect(materials.count == 4)
        #expect(materials.allSatisfy { $0[pointer: "/source"] == "shared-data" })
        #expect(
            Set(materials.compactMap { $0[pointer: "/eventId"]?.stringValue }) == ["hh-0001", "si-0001", "mk-0001"])
        // The view's usage log lists each fact read once, by the orchestrator, for the application,
        // and nothing else (ingesting is not a read).
        let first = [
            "orchestrator GR-2026-000011 household-record hh-0001",
            "orchestrator GR-2026-000011 social-insurance-enrolment si-0001",
        ]
        #expect(try await reads(view, of: Self.graduateId) == first)
        #expect(try await reads(view, of: Self.employer) == ["orchestrator GR-2026-000011 business-licence mk-0001"])
        #expect(try await reads(view, of: Self.unenrolledId) == [])

        // A redelivery of the application reads nothing again: the case has its facts.
        try await engine.process(try await readTopic(bench.log, "application.graduate-registration.submitted"))
        #expect(try await reads(view, of: Self.graduateId) == first)
        #expect(try await view.usage(of: Self.employer).count == 1)

        // A graduate whose enrolment the view does not hold is asked for exactly it.
        try await bench.submit(
            Self.graduate("GR-2026-000012", residentId: Self.unenrolledId),
            type: "application.graduate-registration.submitted")
        try await bench.pump(engine)
        #expect(
            try await reads(view, of: Self.unenrolledId) == [
                "orchestrator GR-2026-000012 household-record hh-0002",
                "orchestrator GR-2026-000012 social-insurance-enrolment -",
            ], "the read that found nothing is in the log too")
        #expect(
            try await reads(view, of: Self.employer) == [
                "orchestrator GR-2026-000011 business-licence mk-0001",
                "orchestrator GR-2026-000012 business-licence mk-0001",
            ])
        #expect(try await reads(view, of: Self.graduateId) == first)
        #expect(try await bench.requests().count == 1, "the second application waits for its document")
        let (waiting, _) = try #require(try engine.store.findCase("GR-2026-000012"))
        #expect(waiting.step("household-entry")?.status == .awaitingDocuments)
        let received = try #require(
            try await bench.events("notification.sms.requested").first { $0.id == "GR-2026-000012/sms/received" })
        #expect(received.body[pointer: "/parameters/missingDocuments"] == "社会保险参保证明")

        // The first completes, reporting the four documents not brought.
        var answered = Set<String>()
        #expect(try await bench.approveAll(answered: &answered) == 1)
        try await bench.pump(engine)
        let (done, _) = try #require(try engine.store.findCase("GR-2026-000011"))
        #expect(done.status == .completed)
        #expect(done.completion?.documents == DocumentCount(serial: 4, submitted: 0))
        let progress = try await bench.events("application.progress.updated").last {
            $0.body[pointer: "/applicationId"] == "GR-2026-000011"
        }
        #expect(progress?.body[pointer: "/documents/notBrought"] == .integer(4))
        #expect(try await bench.events(Repo.catalog.deadLetterTopic).isEmpty)

        // onewindow status shows both: the count, and what the other waits for.
        func status(_ id: String) async throws -> String {
            let result = try await runProgram(
                try onewindowExecutable().path,
                [
                    "status", id, "--store", bench.storePath, "--catalog",
                    repositoryRoot.appendingPathComponent("Topics").path, "--rules", Repo.rulesDirectory.path,
                ])
            #expect(result.status == 0, "\(String(decoding: result.error, as: UTF8.self))")
            return String(decoding: result.output, as: UTF8.self)
        }
        let completed = try await status("GR-2026-000011")
        #expect(completed.contains("居民身份证 (household.member.changed hh-0001)"), "\(completed)")
        #expect(
            completed.contains("documents: 0 handed in, 4 if serial: 4 the applicant did not have to bring"),
            "\(completed)")
        let held = try await status("GR-2026-000012")
        #expect(held.contains("household-entry  awaiting-documents"), "\(held)")
        #expect(held.contains("waits for the applicant's documents: 社会保险参保证明\n"), "\(held)")
    }

    /// `onewindow view run` and `onewindow orchestrator run --view` as separate processes on one
    /// embedded bus file: the departments' facts reach the view, and a graduate's application
    /// arriving afterwards is filled from it and completes with no document handed in.
    @Test(
        "view run and orchestrator run --view as processes on one bus: a graduate completes with no documents",
        .timeLimit(.minutes(2)))
    func graduateAcrossProcesses() async throws {
        let world = try ProcessWorld(backend: .embedded)
        try await world.createTopics()
        let bus = try world.reader()
        try await Self.publishFacts(Publisher(log: bus, catalog: Repo.catalog, name: "test-department"))
        let viewPath = world.directory.appendingPathComponent("shared-view.sqlite").path
        try world.start("view", ["view", "run", "--view", viewPath, "--log-level", "warning"] + world.busArguments)

        // The view holds the four facts before the application arrives.
        var held = 0
        let ingestDeadline = ContinuousClock.now + .seconds(30)
        while held < 4, ContinuousClock.now < ingestDeadline {
            try await Task.sleep(for: .milliseconds(100))
            if let view = try? SharedViewStore.openExisting(path: viewPath) { held = try await view.counts().facts }
        }
        try #require(held == 4, "the view ingested \(held) of 4 facts:\n\(world.outputs)")

        try world.startOrchestrator(["--view", viewPath])
        let id = "GR-2026-000021"
        try await world.apply("graduate-registration", Self.graduate(id, submitted: Date()))
        // The household registry approves each request once, as its desk would.
        let publisher = Publisher(log: bus, catalog: Repo.catalog, name: "test-household-registry")
        var answered = Set<String>()
        var graduate: Case?
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            for topic in Repo.catalog.topics(carrying: "approval.requested") {
                for request in try await events(bus, topic.name) where answered.insert(request.id).inserted {
                    let body = request.body
                    let decision = RestaurantExample.decision(
                        applicationId: body[pointer: "/applicationId"]!.stringValue!,
                        department: body[pointer: "/department"]!.stringValue!,
                        item: body[pointer: "/item"]!.stringValue!, decidedAt: Date())
                    _ = try await publisher.publish(
                        Event(
                            id: "re-\(request.id)", type: "approval.decided", source: "test-household-registry",
                            subject: nil, time: Date(), data: decision.serialized()))
                }
            }
            // The store is read once a request shows the orchestrator made it: opened earlier, the
            // test would create its tables at the same time as the orchestrator does.
            if !answered.isEmpty {
                graduate = try world.cases([id])[id]
                if let graduate, graduate.status != .inProgress { break }
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        try await world.stop()

        #expect(graduate?.status == .completed, "\(world.outputs)")
        #expect(graduate?.completion?.documents == DocumentCount(serial: 4, submitted: 0))
        #expect(answered.count == 1, "one approval request, with every material from the view")
        let view = try SharedViewStore.openExisting(path: viewPath)
        #expect(
            try await reads(view, of: Self.graduateId) == [
                "orchestrator \(id) household-record hh-0001", "orchestrator \(id) social-insurance-enrolment si-0001",
            ])
        await bus.close()
    }
}
