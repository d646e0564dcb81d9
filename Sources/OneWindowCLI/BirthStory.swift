import CivilTime
import EventModel
import EventSchemas
import Foundation

/// The demo's birth (推送办): the household registry registers a newborn, and the citizen services
/// (Rules/life-events.yaml) push the related services — newborn household entry, medical insurance
/// enrolment, vaccination booking — to each parent by text message, without anyone applying. The
/// registration is published on the bus as the registry's connector would publish it; the story
/// prints each message as requested, with when it came: its working day and how long after the
/// registration it was requested, in real time (the world's clock runs two days a second, so its
/// hours would say more about the demo than about the services).
struct BirthStory: Sendable {
    /// What happened, for the exit status.
    struct Summary: Sendable {
        /// The parents (by name) the registration gave a mobile number for.
        var parents: [String] = []
        /// The parents a push was requested for.
        var pushed: [String] = []

        /// What is missing, empty when every parent was pushed to.
        var missing: [String] {
            parents.filter { !pushed.contains($0) }.map { "the birth's push to \($0)" }
        }
    }

    let world: DemoWorld

    /// Publishes the registration on the world's clock and follows the pushes until each parent
    /// has one (or the world's limits give up on them).
    func run() async throws -> Summary {
        try await world.waitForOfficeHours()
        var birth = world.catalog.schemas["household.birth.registered"]?.examples.first ?? .object([:])
        let registered = world.clock.now()
        // Born three days before the registration, with a resident ID to match (sequence 013, a boy).
        let born = ChinaTime.date(at: registered.addingTimeInterval(-3 * 86_400))
        let first17 = "440604" + born.description.replacingOccurrences(of: "-", with: "") + "013"
        if let check = ResidentIDNumber.checkCharacter(for: first17) {
            birth.set(.string(born.description), at: "/child/birthDate")
            birth.set(.string(first17 + String(check)), at: "/child/residentId")
        }
        birth.set(.string(ChinaTime.rfc3339(registered)), at: "/registeredAt")
        if birth[pointer: "/father/mobile"] == nil {
            birth.set(.string("13902761235"), at: "/father/mobile")  // the example has the mother's only
        }
        var summary = Summary()
        var names: [String: String] = [:]  // resident ID → parent's name
        for parent in ["mother", "father"] {
            if let name = birth[pointer: "/\(parent)/name"]?.stringValue,
                let id = birth[pointer: "/\(parent)/residentId"]?.stringValue,
                birth[pointer: "/\(parent)/mobile"] != nil
            {
                summary.parents.append(name)
                names[id] = name
            }
        }
        let child = birth[pointer: "/child/name"]?.stringValue ?? "?"
        let office = birth[pointer: "/registrationOffice"]?.stringValue ?? "?"

        let watcher = try await world.watcher("birth-\(UUID().uuidString.prefix(8))", topics: ["notification.sms.requested"])
        let (_, event) = try await world.publisher.publish(
            Event(
                type: "household.birth.registered", source: "/departments/household-registry", subject: nil,
                data: birth.serialized()))
        let published = ContinuousClock.now
        world.write(
            "   \(office) registers \(child), born \(birth[pointer: "/child/birthDate"]?.stringValue ?? "?"), to \(summary.parents.joined(separator: " and ")), on \(ChinaTime.rfc3339(registered))"
        )
        try await world.follow(
            watcher, done: { summary.missing.isEmpty },
            handle: { sms, body in
                guard body[pointer: "/notificationId"]?.stringValue?.hasPrefix("life-event/\(event.id)/") == true
                else { return false }
                let name = names[body[pointer: "/residentId"]?.stringValue ?? ""] ?? "?"
                summary.pushed.append(name)
                let after = ContinuousClock.now - published
                let seconds = Double(after.components.seconds) + Double(after.components.attoseconds) / 1e18
                world.write(
                    "   ✉ to \(name) \(Masking.phone(body[pointer: "/mobile"]?.stringValue ?? "-")), \(String(format: "%.2f", seconds)) s after the registration reached the bus — \(world.day(sms.time, since: registered)):"
                )
                world.write("     \(body[pointer: "/parameters/text"]?.stringValue ?? "?")")
                return true
            })
        if summary.missing.isEmpty {
            world.write(
                "\n   \(summary.parents.count) parents told of \(birth[pointer: "/child/name"]?.stringValue ?? "the child")'s services without applying for anything"
            )
        }
        return summary
    }
}
