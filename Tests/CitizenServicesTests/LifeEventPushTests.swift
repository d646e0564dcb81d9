import CitizenServices
import CivilTime
import EventModel
import EventSchemas
import Foundation
import Orchestrator
import OrchestratorService
import TestSupport
import Testing

/// Life-event pushes on a real bus and store: each push once however often its event is replayed.
@Suite("Life-event pushes", .serialized)
struct LifeEventPushTests {
    @Test("A birth and a death push once each under replay; the embedded log", .timeLimit(.minutes(1)))
    func embedded() async throws { try await pushesOnceUnderReplay(kafka: false) }

    @Test("A birth and a death push once each under replay; a Kafka test broker of its own", .timeLimit(.minutes(2)))
    func onKafka() async throws { try await pushesOnceUnderReplay(kafka: true) }

    func pushesOnceUnderReplay(kafka: Bool) async throws {
        let bench = try await Bench(kafka: kafka)
        let engine = try bench.engine()
        try await bench.publish("household.birth.registered", id: "birth-1", Examples.birth())
        try await bench.publish("household.death.registered", id: "death-1", Examples.death())
        let first = try await bench.pump(engine, records: 2)
        #expect(first.handled == 2)
        #expect(first.messages == 3)  // both parents, and the informant
        #expect(first.applicationsStarted == 1)

        // The producer sends the same events again (a retry), and the whole topics are read again
        // (a replay: a group that never read them, as after an offset reset): the originals and the
        // copies, four records, all handled before.
        try await bench.publish("household.birth.registered", id: "birth-1", Examples.birth())
        try await bench.publish("household.death.registered", id: "death-1", Examples.death())
        let replay = try await bench.pump(engine, group: "replay-\(UUID().uuidString.prefix(6))", records: 4)
        #expect(replay.duplicates == 4 && replay.messages == 0 && replay.applicationsStarted == 0)

        let messages = try await bench.events("notification.sms.requested")
        #expect(messages.count == 3)
        #expect(Set(messages.map(\.id)).count == 3)
        let byRecipient = Dictionary(uniqueKeysWithValues: messages.map { ($0.body[pointer: "/residentId"]!.stringValue!, $0.body) })
        #expect(Set(byRecipient.keys) == [Examples.mother, Examples.father, Examples.informant])
        let toMother = byRecipient[Examples.mother]!
        #expect(toMother[pointer: "/mobile"] == "13802761234")
        #expect(toMother[pointer: "/template"] == "life-event-reminder")
        let text = toMother[pointer: "/parameters/text"]!.stringValue!
        #expect(text.contains("陈慧敏您好"))
        #expect(text.contains("李子轩"))
        for title in ["新生儿入户", "城乡居民医疗保险参保", "预防接种预约"] { #expect(text.contains(title)) }
        #expect(text.contains("https://www.gdzwfw.gov.cn/"))
        #expect(text.contains("社区卫生服务中心预防接种门诊"))

        let applications = try await bench.events("application.death-aftercare.submitted")
        #expect(applications.count == 1)
        let application = try #require(applications.first).body
        let applicationId = try #require(application[pointer: "/applicationId"]?.stringValue)
        #expect(applicationId == "DA-2026-000001")
        #expect(application[pointer: "/applicant/residentId"]?.stringValue == Examples.informant)
        #expect(application[pointer: "/deceased/residentId"]?.stringValue == Examples.deceased)
        let toFamily = byRecipient[Examples.informant]!
        #expect(toFamily[pointer: "/applicationId"]?.stringValue == applicationId)
        let familyText = toFamily[pointer: "/parameters/text"]!.stringValue!
        #expect(familyText.contains("黄桂英") && familyText.contains(applicationId))
        #expect(familyText.contains("养老保险待遇停发") && familyText.contains("丧葬补助金"))
    }

    @Test("The application a death starts is one the orchestrator runs: pension suspension and funeral subsidy requested")
    func orchestratorRunsTheStartedApplication() async throws {
        let bench = try await Bench()
        try await bench.publish("household.death.registered", id: "death-2", Examples.death())
        try await bench.pump(try bench.engine())
        let book = try RuleBook.load(directory: Repo.rulesDirectory, catalog: Repo.catalog)
        let calendar = try WorkingDayCalendar.load(from: Repo.rulesDirectory.appendingPathComponent("calendar.yaml"))
        let orchestrator = try OrchestratorEngine(
            store: OrchestratorStore(path: bench.directory.appendingPathComponent("orch.sqlite").path), rules: book,
            calendar: calendar, log: bench.log, catalog: Repo.catalog, clock: bench.clock)
        let consumer = try await bench.log.makeConsumer(.group(OrchestratorEngine.group, topics: orchestrator.topics))
        let records = try await consumer.poll(maxRecords: 500, timeout: .milliseconds(200))
        let outcome = try await orchestrator.process(records)
        await consumer.close()
        while try await orchestrator.relayOnce() > 0 {}
        #expect(outcome.applied == 1 && outcome.deadLettered == 0)
        let requests = try await bench.events("approval.social-security.requested").map(\.body)
        #expect(Set(requests.compactMap { $0[pointer: "/item"]?.stringValue }) == ["pension-suspension", "funeral-subsidy"])
        #expect(requests.allSatisfy { $0[pointer: "/details/residentId"]?.stringValue == Examples.deceased })
    }

    @Test("With no mobile number: a birth tells the parent who has one, a death still starts its services ex officio")
    func noMobileNumber() async throws {
        let bench = try await Bench()
        let engine = try bench.engine()
        try await bench.publish("household.birth.registered", id: "birth-3", Examples.birth(motherMobile: nil))
        try await bench.publish("household.birth.registered", id: "birth-4", Examples.birth(motherMobile: nil, fatherMobile: nil))
        try await bench.publish("household.death.registered", id: "death-3", Examples.death(informantMobile: nil))
        let outcome = try await bench.pump(engine)
        #expect(outcome.messages == 1)
        #expect(outcome.unreachable == 2)
        let messages = try await bench.events("notification.sms.requested")
        #expect(messages.map { $0.body[pointer: "/residentId"]?.stringValue } == [Examples.father])
        let application = try #require(try await bench.events("application.death-aftercare.submitted").first).body
        // The social security duty officer of Rules/departments.yaml stands in as applicant.
        #expect(application[pointer: "/applicant/mobile"] == "13800000010")
    }
}

/// The retirement timer: stored per resident, fired on the injected clock, once.
@Suite("Retirement timers")
struct RetirementTimerTests {
    @Test("A resident's retirement timer fires once on the clock, across a restart before and after it fires")
    func firesOnceAcrossRestart() async throws {
        // A woman born 1971-03-15 reaches the retirement age of 55 on 2026-03-15.
        let resident = Repo.residentId(born: "1971-03-15", sequence: 22)
        let bench = try await Bench(start: Repo.at("2026-03-02", 9, 30))
        do {
            let engine = try bench.engine()
            try await bench.publish("socialsecurity.enrolment.registered", id: "enrol-1", Examples.enrolment(resident))
            try await bench.pump(engine)
            #expect(try engine.store.retirementTimer(resident)?.dueAt == Repo.at("2026-03-15", 9))
            #expect(try await engine.fireDueRetirements(partitions: nil).applicationsStarted == 0)  // not yet
        }
        // A restart: the timer is in the store, not in memory.
        await bench.clock.advance(by: .seconds(13 * 86400 + 1))
        let restarted = try bench.engine()
        let fired = try await restarted.fireDueRetirements(partitions: nil)
        #expect(fired.applicationsStarted == 1 && fired.messages == 1)
        while try await restarted.relayOnce() > 0 {}
        // Another restart, later: nothing fires again, and a replayed enrolment sets no new timer.
        await bench.clock.advance(by: .seconds(86400))
        let again = try bench.engine()
        #expect(try await again.fireDueRetirements(partitions: nil).handled == 0)
        try await bench.pump(again, group: "replay-enrolments")
        #expect(try await again.fireDueRetirements(partitions: nil).handled == 0)
        #expect(try again.store.retirementTimer(resident)?.state == "fired")

        let applications = try await bench.events("application.pension-certification.submitted").map(\.body)
        #expect(applications.count == 1)
        #expect(applications.first?[pointer: "/retiree/retirementDate"] == "2026-03-15")
        #expect(applications.first?[pointer: "/applicationId"] == "PC-2026-000001")
        let messages = try await bench.events("notification.sms.requested").map(\.body)
        #expect(messages.count == 1)
        #expect(messages.first?[pointer: "/residentId"]?.stringValue == resident)
        #expect(messages.first?[pointer: "/parameters/text"]?.stringValue?.contains("2026-03-15") == true)
    }

    @Test("A death before the retirement date cancels the timer; a scheme that is not a pension sets none")
    func deathCancels() async throws {
        let bench = try await Bench(start: Repo.at("2026-03-02", 9, 30))
        let engine = try bench.engine()
        let medical = Repo.residentId(born: "1966-05-01", sequence: 11)
        try await bench.publish(
            "socialsecurity.enrolment.registered", id: "enrol-2", Examples.enrolment(Examples.deceased))
        try await bench.publish(
            "socialsecurity.enrolment.registered", id: "enrol-3",
            Examples.enrolment(medical, scheme: "employee-medical"))
        try await bench.pump(engine)
        #expect(try engine.store.retirementTimer(medical) == nil)
        // Born 1938: retired in 1998, long before this enrolment was read: no timer either.
        #expect(try engine.store.retirementTimer(Examples.deceased) == nil)
        // Enrolled, then dead: the timer is cancelled. Dead, then the enrolment read: no timer.
        let young = Repo.residentId(born: "1980-06-30", sequence: 15)
        let other = Repo.residentId(born: "1982-01-10", sequence: 19)
        try await bench.publish("socialsecurity.enrolment.registered", id: "enrol-4", Examples.enrolment(young))
        try await bench.pump(engine)
        #expect(try engine.store.retirementTimer(young)?.state == "waiting")
        for (id, resident) in [("death-young", young), ("death-other", other)] {
            var death = Examples.death()
            death.set(.string(resident), at: "/residentId")
            try await bench.publish("household.death.registered", id: id, death)
        }
        try await bench.pump(engine)
        try await bench.publish("socialsecurity.enrolment.registered", id: "enrol-5", Examples.enrolment(other))
        try await bench.pump(engine)
        #expect(try engine.store.retirementTimer(young)?.state == "cancelled")
        #expect(try engine.store.retirementTimer(other) == nil)
    }

    @Test("The retirement date: the age of the sex the ID carries, 29 February in a year without one")
    func retirementDate() throws {
        let rules = Repo.rules.lifeEvents
        let man = try #require(ResidentIDNumber.birthDateAndSex(of: Repo.residentId(born: "1968-02-29", sequence: 15)))
        #expect(man.sex == .male && man.birthDate == CivilDate("1968-02-29"))
        #expect(rules.retirementDate(birthDate: man.birthDate, sex: man.sex) == CivilDate("2028-02-29"))
        #expect(rules.retirementDate(birthDate: CivilDate("1972-02-29")!, sex: .female) == CivilDate("2027-02-28"))
        #expect(ResidentIDNumber.birthDateAndSex(of: "440604199308220240") == nil)  // wrong check character
    }
}
