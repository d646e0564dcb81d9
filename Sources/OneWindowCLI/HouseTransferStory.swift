import CivilTime
import EventSchemas
import Foundation

/// The demo's house transfer (二手房转移, Rules/workflows/house-transfer.yaml): contract filing
/// → valuation → tax → registration, on the world's clock (``DemoWorld``). The story shows the data
/// flowing from the real estate centre to the tax bureau and back — the valuation's assessed price
/// reaching the tax request without anyone re-entering it, the deed tax the bureau assessed, its
/// certificate reaching the registration and the new property certificate — and at the end the
/// working days against the seeds' former 3 working days of price check + 7 of tax.
struct HouseTransferStory: Sendable {
    /// The workflow's items, in the order of its steps.
    static let items = ["contract-filing", "valuation", "tax-assessment-clearance", "transfer-registration"]
    /// The seeds' figure before the reform: 3 working days of price check, then 7 of tax.
    static let formerWorkingDays = (priceCheck: 3, tax: 7)

    let world: DemoWorld

    /// What is missing of the story in `trace`, empty when every step happened: each step's
    /// request and decision, the messages, the completion, and the data carried between them.
    static func missing(_ trace: ApplicationTrace) -> [String] {
        var missing = trace.missing(items, by: "item")
        if let assessed = trace.decision("valuation")?[pointer: "/fields/assessedPriceFen"],
            let tax = trace.request("tax-assessment-clearance")
        {
            if tax[pointer: "/details/assessedPriceFen"]?.doubleValue != assessed.doubleValue {
                missing.append("the valuation's assessed price in the tax request")
            }
        } else if trace.decision("valuation") != nil {
            missing.append("the valuation's assessed price")
        }
        if trace.decision("tax-assessment-clearance") != nil,
            trace.decision("tax-assessment-clearance")?[pointer: "/fields/assessedTaxFen"] == nil
        {
            missing.append("the deed tax assessed")
        }
        return missing
    }

    /// `¥1,590,000.00` of an amount in fen.
    static func yuan(_ fen: JSONValue?) -> String {
        guard let value = fen?.doubleValue, value.isFinite, abs(value) < 1e15 else { return "?" }
        let fen = Int64(value.rounded())
        var digits = String(abs(fen) / 100)
        var grouped = ""
        while digits.count > 3 {
            grouped = "," + digits.suffix(3) + grouped
            digits = String(digits.dropLast(3))
        }
        let cents = abs(fen) % 100
        return (fen < 0 ? "-¥" : "¥") + digits + grouped + "." + (cents < 10 ? "0" : "") + String(cents)
    }

    /// Submits the application on the world's clock and follows it until it completes (or the
    /// world's limits give up on it).
    func run() async throws -> ApplicationTrace {
        try await world.waitForOfficeHours()
        let id = world.applicationId(prefix: "HT")
        let submitted = world.clock.now()
        var application =
            world.catalog.schemas["application.house-transfer.submitted"]?.examples.first ?? .object([:])
        application.set(.string(id), at: "/applicationId")
        application.set(.string(ChinaTime.rfc3339(submitted)), at: "/submittedAt")
        let buyer = application[pointer: "/buyer/name"]?.stringValue ?? "?"
        let seller = application[pointer: "/seller/name"]?.stringValue ?? "?"
        world.write(
            "   submitted \(id): \(seller) sells to \(buyer), declared price \(Self.yuan(application[pointer: "/declaredPriceFen"])), on \(ChinaTime.rfc3339(submitted))"
        )
        let trace = try await world.followApplication(
            application, type: "application.house-transfer.submitted", note: Self.note,
            complete: { Self.missing($0).isEmpty })
        if let completion = trace.completion {
            let former = Self.formerWorkingDays
            world.write(
                "   formerly (the seeds): \(former.priceCheck) working days of price check + \(former.tax) of tax = \(former.priceCheck + former.tax), before the registration; now the whole transfer took \(completion.elapsedWorkingDays)"
            )
        }
        return trace
    }

    /// What a line of the story adds: the data carried between the real estate centre and the
    /// tax bureau.
    static func note(_ type: String, _ body: JSONValue) -> String {
        switch (type, body[pointer: "/item"]?.stringValue ?? "") {
        case ("approval.requested", "tax-assessment-clearance"):
            return "; carries the assessed price \(yuan(body[pointer: "/details/assessedPriceFen"])) from the valuation"
        case ("approval.requested", "transfer-registration"):
            let certificate = body[pointer: "/materials"]?.arrayValue?.first {
                $0[pointer: "/name"]?.stringValue == "完税证明"
            }?[pointer: "/value"]?.stringValue
            return "; carries the tax certificate \(certificate ?? "?")"
        case ("approval.decided", "valuation"):
            return "; assessed price \(yuan(body[pointer: "/fields/assessedPriceFen"]))"
        case ("approval.decided", "tax-assessment-clearance"):
            return " (tax certificate); deed tax \(yuan(body[pointer: "/fields/assessedTaxFen"]))"
        case ("approval.decided", "transfer-registration"):
            return " (the buyer's new property certificate)"
        default:
            return ""
        }
    }
}
