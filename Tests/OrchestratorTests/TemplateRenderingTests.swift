import Foundation
@testable import Orchestrator
import Testing
import TestSupport

/// A message's direct rendering (its text cut at the placeholders) against Mustache's, which it
/// stands in for when every value is text.
@Suite struct TemplateRenderingTests {
    /// Every placeholder any moment may use, with text values (`step.title` as a nested dictionary).
    static var values: [String: Any] {
        [
        "applicationId": "RA-2026-000001", "service": ["title": "我要开餐馆"], "applicant": ["name": "陈美玲"],
        "recipient": ["name": "张科长"], "date": "2026-05-28", "dueDate": "2026-06-11", "requestedDate": "2026-05-28",
        "reason": "材料不全，请补充 & <核对>", "missingDocuments": "无", "elapsedWorkingDays": "10",
        "serialWorkingDays": "45", "documentsNotBrought": "18",
        "step": ["title": "食品经营许可证", "department": "食品安全", "item": "food-business-licence"] as [String: Any],
        ]
    }

    /// What Mustache renders for the template's text.
    static func mustache(_ text: String, _ values: [String: Any]) throws -> String {
        try NotificationRules.Template(sms: "x", text: text).compiled.render(values)
    }

    static func template(_ text: String) throws -> NotificationRules.Template {
        try NotificationRules.Template(sms: "x", text: text)
    }

    @Test func everyTemplateOfTheRulesRendersAsMustacheDoes() throws {
        for workflow in Fixtures.rules.current.values {
            for (moment, template) in workflow.notifications.templates {
                #expect(template.pieces != nil, "\(moment) is rendered directly")
                #expect(template.render(Self.values) == (try Self.mustache(template.text, Self.values)), "\(moment)")
                // A value missing, and one that is not text: Mustache decides, as before.
                var partial = Self.values
                partial["applicant"] = nil
                partial["applicationId"] = 42
                #expect(template.render(partial) == (try Self.mustache(template.text, partial)), "\(moment)")
            }
        }
    }

    @Test(arguments: [
        "", "no placeholders", "{{applicationId}}", "{{ applicationId }}!", "a{{{applicant.name}}}b{{step.title}}",
        "{{step.title}}{{step.department}}", "{{reason}}", "\n{{applicationId}}", "{{#step}}{{title}}{{/step}}",
        "{{applicationId", "{{step.}}", "x {{ step.item }} y {{date}}", "{{unknown}}", "{{step.unknown}}",
    ])
    func texts(text: String) throws {
        // A text Mustache refuses is refused when the rules load; nothing to compare.
        guard let template = try? Self.template(text) else { return }
        #expect(template.render(Self.values) == (try Self.mustache(text, Self.values)))
    }
}
