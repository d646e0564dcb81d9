import CivilTime
import DepartmentSystems
import EventSchemas
import Foundation

/// The demo's restaurant: an application submitted at the front desk goes to the market bureau
/// for the business licence, then to five departments at once, each deciding on the world's clock
/// (``DemoWorld``); the story prints each request, decision and text message as it reaches the
/// bus, and at the end the completion record's working days against the serial sum.
struct RestaurantStory: Sendable {
    /// The departments of the restaurant workflow, in the order of its steps.
    static let departments: [DepartmentID] = [
        .marketRegulation, .foodSafety, .fireSafety, .environment, .urbanManagement, .tax,
    ]

    let world: DemoWorld

    /// What is missing of the story in `trace`, empty when every step happened.
    static func missing(_ trace: ApplicationTrace) -> [String] {
        trace.missing(departments.map(\.rawValue), by: "department")
    }

    /// Submits the application on the world's clock and follows it until it completes (or the
    /// world's limits give up on it).
    func run() async throws -> ApplicationTrace {
        let id = world.applicationId(prefix: "RA")
        let submitted = world.clock.now()
        var application = world.catalog.schemas["application.restaurant.submitted"]?.examples.first ?? .object([:])
        application.set(.string(id), at: "/applicationId")
        application.set(.string(ChinaTime.rfc3339(submitted)), at: "/submittedAt")
        application.set(.number(200), at: "/business/areaSquareMetres")  // large enough for the fire inspection
        application.set(.integer(60), at: "/business/seats")
        application.set(.bool(true), at: "/business/hasOutdoorSignboard")  // and a sign to permit
        world.write("   submitted \(id), 佛山市禅城区粤味轩餐饮店 (200 m², 60 seats, an outdoor sign), on \(ChinaTime.rfc3339(submitted))")
        return try await world.followApplication(
            application, type: "application.restaurant.submitted", complete: { Self.missing($0).isEmpty })
    }
}
