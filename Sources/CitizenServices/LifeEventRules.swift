import CivilTime
import ConfigFiles
import EventSchemas
import Foundation
import Orchestrator

/// The sex a resident ID number carries: its 17th character, odd for a man, even for a woman.
public enum Sex: String, Sendable, Hashable, CaseIterable {
    case male, female
}

extension ResidentIDNumber {
    /// The birth date (characters 7–14) and sex (character 17) of a valid resident ID number;
    /// `nil` when the number is not valid.
    public static func birthDateAndSex(of id: String) -> (birthDate: CivilDate, sex: Sex)? {
        guard problem(in: id) == nil else { return nil }
        let characters = Array(id)
        guard let date = CivilDate(String(characters[6..<14]).inserting(dashes: ())),
            let digit = characters[16].wholeNumberValue
        else { return nil }
        return (date, digit % 2 == 1 ? .male : .female)
    }
}

extension String {
    /// `19710315` → `1971-03-15`.
    fileprivate func inserting(dashes: ()) -> String {
        let c = Array(self)
        return String(c[0..<4]) + "-" + String(c[4..<6]) + "-" + String(c[6..<8])
    }
}

/// The life events `Rules/life-events.yaml` pushes on.
public enum LifeEvent: String, Sendable, Hashable, CaseIterable {
    /// `household.birth.registered`: the parents are told of the newborn's services.
    case birth
    /// `household.death.registered`: a workflow starts and the family member who reported it is told.
    case death
    /// A resident enrolled in a pension scheme reaches the retirement age: a workflow starts and
    /// the resident is told.
    case retirement

    /// The placeholders its text may use.
    public var placeholders: Set<String> {
        var names: Set<String> = ["recipient.name", "services", "date"]
        switch self {
        case .birth: names.formUnion(["child.name", "child.birthDate"])
        case .death: names.formUnion(["deceased.name", "dateOfDeath", "applicationId"])
        case .retirement: names.formUnion(["retirementDate", "applicationId"])
        }
        return names
    }

    /// Whether it starts a workflow (`starts:` is required) rather than only telling.
    public var startsWorkflow: Bool { self != .birth }
}

/// A service a push names, with where to do it: a link or a window (one of them).
public struct PushedService: Sendable, Hashable {
    public let title: String
    public let link: String?
    public let window: String?

    /// `新生儿入户（https://…）`.
    public var shown: String { "\(title)（\(link ?? window ?? "")）" }
}

/// One life event's push: its message, the services it names and the workflow it starts.
public struct LifeEventPush: Sendable, Hashable {
    public let event: LifeEvent
    /// The message (its `sms` is the `notification.sms.requested` template name).
    public let template: NotificationRules.Template
    public let services: [PushedService]
    /// The workflow (of Rules/workflows) whose application the event starts; `nil` for a birth.
    public let starts: String?

    /// The services as the `{{services}}` placeholder shows them: `A（link）；B（window）`.
    public var servicesText: String { services.map(\.shown).joined(separator: "；") }
}

/// `Rules/life-events.yaml`: the retirement ages, the pension schemes that set a resident's
/// retirement timer, and a push per life event. Read strictly (unknown keys refused with the
/// nearest known one, every problem with its file and line).
public struct LifeEventRules: Sendable, Hashable {
    /// The file's name in the rules directory.
    public static let file = "life-events.yaml"

    /// The retirement age by sex, in whole years.
    public let retirementAge: [Sex: Int]
    /// The schemes of `socialsecurity.enrolment.registered` whose enrolment sets a retirement timer.
    public let pensionSchemes: Set<String>
    /// Every life event's push.
    public let pushes: [LifeEvent: LifeEventPush]

    /// The day a resident born on `birthDate` reaches the retirement age (29 February becomes
    /// 28 February in a year that has none).
    public func retirementDate(birthDate: CivilDate, sex: Sex) -> CivilDate {
        let year = birthDate.year + (retirementAge[sex] ?? 60)
        let day = min(birthDate.day, CivilDate.daysIn(year: year, month: birthDate.month))
        return CivilDate(year: year, month: birthDate.month, day: day)!
    }

    /// Loads `life-events.yaml` of a rules directory. `rules` are the workflows `starts:` may name.
    /// - Throws: ``RuleBookError`` listing every problem with its file and line.
    public static func load(directory: URL, rules: RuleBook, catalog: TopicCatalog) throws(RuleBookError)
        -> LifeEventRules
    {
        let url = directory.appendingPathComponent(file)
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw RuleBookError(problems: [
                ConfigFileError(
                    file: url.path, location: "",
                    problem: "cannot read the life-event rules; create \(file) in the rules directory (Rules/README.md)")
            ])
        }
        return try parse(text, file: url.path, rules: rules, catalog: catalog)
    }

    /// Parses the text of a `life-events.yaml`.
    public static func parse(_ text: String, file: String, rules: RuleBook, catalog: TopicCatalog) throws(RuleBookError)
        -> LifeEventRules
    {
        var problems: [ConfigFileError] = []
        let smsNames =
            catalog.schemas["notification.sms.requested"]?.field(at: "/template")?.enumValues?.compactMap(\.stringValue)
            ?? []
        var ages: [Sex: Int] = [:]
        var schemes: Set<String> = []
        var pushes: [LifeEvent: LifeEventPush] = [:]
        do {
            let root = try ConfigNode.parse(text, file: file).mapping(
                keys: ["retirementAge", "pensionSchemes"] + LifeEvent.allCases.map(\.rawValue))
            do {
                let node = try root.require("retirementAge", "the retirement age by sex, e.g. {male: 60, female: 55}")
                let mapping = try node.mapping(keys: Sex.allCases.map(\.rawValue))
                for sex in Sex.allCases {
                    let value = try mapping.require(sex.rawValue)
                    let age = try value.int()
                    guard (30...80).contains(age) else { throw value.fail("a retirement age is 30 to 80 years, found \(age)") }
                    ages[sex] = age
                }
            } catch let error as ConfigFileError { problems.append(error) }
            do {
                let node = try root.require("pensionSchemes", "the schemes whose enrolment sets a retirement timer")
                let known =
                    catalog.schemas["socialsecurity.enrolment.registered"]?.field(at: "/scheme")?.enumValues?
                    .compactMap(\.stringValue) ?? []
                for element in try node.list() {
                    let scheme = try element.string()
                    if !known.isEmpty, !known.contains(scheme) {
                        problems.append(
                            element.fail(
                                "\(scheme) is not a scheme of socialsecurity.enrolment.registered; its schemes are \(known.joined(separator: ", "))"
                            ))
                    }
                    schemes.insert(scheme)
                }
            } catch let error as ConfigFileError { problems.append(error) }
            for event in LifeEvent.allCases {
                do {
                    let keys = ["sms", "text", "services"] + (event.startsWorkflow ? ["starts"] : [])
                    let entry = try root.require(event.rawValue, "the push of a \(event.rawValue)").mapping(keys: keys)
                    var starts: String?
                    if event.startsWorkflow {
                        let node = try entry.require("starts", "the workflow a \(event.rawValue) starts")
                        let id = try node.string()
                        if rules.current[id] == nil {
                            let known = rules.current.keys.sorted()
                            let hint =
                                KeySuggestion.nearest(to: id, in: known).map { "did you mean \($0)?" }
                                ?? "the workflows are \(known.joined(separator: ", "))"
                            problems.append(node.fail("no workflow \(id) in Rules/workflows; \(hint)"))
                        }
                        starts = id
                    }
                    var services: [PushedService] = []
                    let list = try entry.require("services", "the services the message names").list()
                    if list.isEmpty { problems.append(entry.node.fail("services: a push names at least one service")) }
                    for element in list {
                        do {
                            let service = try element.mapping(keys: ["title", "link", "window"])
                            let link = try service.optionalString("link")
                            let window = try service.optionalString("window")
                            guard (link == nil) != (window == nil) else {
                                throw element.fail("a service has either a link or a window (where to go), not \(link == nil ? "neither" : "both")")
                            }
                            if let link, !(link.hasPrefix("https://") || link.hasPrefix("http://")) {
                                throw try service.require("link").fail("a link starts with https://, found \(link)")
                            }
                            services.append(
                                PushedService(title: try service.string("title"), link: link, window: window))
                        } catch let error as ConfigFileError { problems.append(error) }
                    }
                    if let template = NotificationRules.Template.read(
                        entry, placeholders: event.placeholders, for: event.rawValue, smsNames: smsNames,
                        problems: &problems)
                    {
                        pushes[event] = LifeEventPush(
                            event: event, template: template, services: services, starts: starts)
                    }
                } catch let error as ConfigFileError { problems.append(error) }
            }
        } catch let error as ConfigFileError {
            problems.append(error)
        } catch {
            problems.append(ConfigFileError(file: file, location: "", problem: "\(error)"))
        }
        guard problems.isEmpty else { throw RuleBookError(problems: problems) }
        return LifeEventRules(retirementAge: ages, pensionSchemes: schemes, pushes: pushes)
    }
}

/// `Rules/repeat-visits.yaml`: the windows within which a second visit is a repeat.
public struct RepeatVisitRules: Sendable, Hashable {
    /// The file's name in the rules directory.
    public static let file = "repeat-visits.yaml"

    /// A second application of the same workflow by the same subject within this many calendar
    /// days raises `repeat-visit`.
    public let submissionWindowDays: Int
    /// A second rejection of the same item for the same subject within this many calendar days
    /// raises `rejected-twice`.
    public let rejectionWindowDays: Int

    public init(submissionWindowDays: Int, rejectionWindowDays: Int) {
        self.submissionWindowDays = submissionWindowDays
        self.rejectionWindowDays = rejectionWindowDays
    }

    /// Loads `repeat-visits.yaml` of a rules directory.
    /// - Throws: ``RuleBookError`` with the problem's file and line.
    public static func load(directory: URL) throws(RuleBookError) -> RepeatVisitRules {
        let url = directory.appendingPathComponent(file)
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw RuleBookError(problems: [
                ConfigFileError(
                    file: url.path, location: "",
                    problem: "cannot read the repeat-visit rules; create \(file) in the rules directory (Rules/README.md)")
            ])
        }
        return try parse(text, file: url.path)
    }

    /// Parses the text of a `repeat-visits.yaml`.
    public static func parse(_ text: String, file: String) throws(RuleBookError) -> RepeatVisitRules {
        do {
            let root = try ConfigNode.parse(text, file: file).mapping(keys: [
                "submissionWindowDays", "rejectionWindowDays",
            ])
            func days(_ key: String) throws -> Int {
                let node = try root.require(key, "a window in calendar days")
                let value = try node.int()
                guard (1...3660).contains(value) else { throw node.fail("a window is 1 to 3660 days, found \(value)") }
                return value
            }
            return RepeatVisitRules(
                submissionWindowDays: try days("submissionWindowDays"), rejectionWindowDays: try days("rejectionWindowDays"))
        } catch let error as ConfigFileError {
            throw RuleBookError(problems: [error])
        } catch {
            throw RuleBookError(problems: [ConfigFileError(file: file, location: "", problem: "\(error)")])
        }
    }
}
