import CivilTime
import EventSchemas
import Foundation
import GRDB

/// An approval request as a department reads it from its inbox: the `approval.requested` body.
public struct ApprovalRequest: Sendable {
    /// The whole body.
    public let body: JSONValue

    /// Wraps a parsed `approval.requested` body.
    public init(body: JSONValue) {
        self.body = body
    }

    /// Parses the inbox's `payload` column; an unreadable payload is an empty request.
    public init(payload: String?) {
        body = payload.flatMap { try? JSONValue.parse(Data($0.utf8)) } ?? .object([:])
    }

    /// `/applicationId`.
    public var applicationId: String? { body[pointer: "/applicationId"]?.stringValue }
    /// `/item`, e.g. `food-business-licence`.
    public var item: String? { body[pointer: "/item"]?.stringValue }
    /// `/service`, e.g. `restaurant-opening`.
    public var service: String? { body[pointer: "/service"]?.stringValue }
    /// `/applicant/name`.
    public var applicantName: String? { body[pointer: "/applicant/name"]?.stringValue }
    /// `/applicant/residentId`.
    public var applicantResidentId: String? { body[pointer: "/applicant/residentId"]?.stringValue }
    /// `/applicant/creditCode`.
    public var applicantCreditCode: String? { body[pointer: "/applicant/creditCode"]?.stringValue }
    /// The names of the materials (submitted or from the shared data).
    public var materialNames: [String] {
        body[pointer: "/materials"]?.arrayValue?.compactMap { $0[pointer: "/name"]?.stringValue } ?? []
    }

    /// A number under `/details`, e.g. `areaSquareMetres`.
    public func number(_ key: String) -> Double? { body[pointer: "/details/\(key)"]?.doubleValue }
    /// A yes/no under `/details`, e.g. `usesGas`.
    public func flag(_ key: String) -> Bool? {
        if case .bool(let value)? = body[pointer: "/details/\(key)"] { return value }
        return nil
    }
    /// A text under `/details`, e.g. `businessName`.
    public func text(_ key: String) -> String? { body[pointer: "/details/\(key)"]?.stringValue }
}

/// A department's answer to one request.
public struct Decision: Sendable, Hashable {
    /// `approved`, `rejected` or `needs-more-information` (the values of `approval.decided`).
    public enum Outcome: String, Sendable, Hashable {
        case approved
        case rejected
        case needsMoreInformation = "needs-more-information"
    }

    /// The outcome.
    public var outcome: Outcome
    /// Why, for a rejection (Chinese, as the department writes it).
    public var reason: String?
    /// The licence, permit or certificate number of an approval, when the department issues one.
    public var licenceNumber: String?
    /// Facts the approval establishes for later steps, in fen (``DecisionFields``), e.g. a
    /// valuation's `assessedPriceFen`; the desk writes them into columns of `approval_decisions`.
    public var fields: [String: Int64] = [:]
}

/// The facts departments' approvals establish for the steps after them, and the columns of
/// `approval_decisions` they are kept in (beyond the columns every department has); each
/// department's connector file maps those columns onto `approval.decided`'s `fields`
/// (`fields:` of its `inbox` sink).
///
/// | department, item | field | column | how |
/// |---|---|---|---|
/// | real-estate, `valuation` | `assessedPriceFen` | `assessed_price_fen` | the area times the reference unit price of the unit's row in `properties`; a unit without one is assessed by the batch model: the declared price × 1.00–1.25, by the unit number |
/// | tax, every item of a transfer | `assessedTaxFen` | `assessed_tax_fen` | deed tax (契税), 3 % of the higher of the declared and the assessed price (no first-home relief in the simulator) |
public enum DecisionFields {
    /// Field → column of `approval_decisions`.
    public static let columns: [String: String] = [
        "assessedPriceFen": "assessed_price_fen", "assessedTaxFen": "assessed_tax_fen",
    ]

    /// The columns a department's `approval_decisions` has beyond the common ones.
    static func migration(_ department: DepartmentID) -> String? {
        switch department {
        case .realEstate: "ALTER TABLE approval_decisions ADD COLUMN assessed_price_fen INTEGER;"
        case .tax: "ALTER TABLE approval_decisions ADD COLUMN assessed_tax_fen INTEGER;"
        default: nil
        }
    }

    /// The facts an approval of `request` by `department` establishes; none for a rejection.
    /// - Parameter db: the department's database (the real estate centre's reference prices).
    static func establish(
        _ department: DepartmentID, _ request: ApprovalRequest, _ decision: Decision, db: Database
    ) throws -> [String: Int64] {
        guard decision.outcome == .approved else { return [:] }
        switch department {
        case .realEstate where request.item == "valuation":
            guard let property = request.text("propertyId") else { return [:] }
            if let row = try Row.fetchOne(
                db, sql: "SELECT building_area, reference_unit_price FROM properties WHERE unit_no = ?",
                arguments: [property]),
                let area = (row["building_area"] as String?).flatMap(Double.init),
                let unitPrice = (row["reference_unit_price"] as String?).flatMap(Double.init)
            {
                return ["assessedPriceFen": Int64((area * unitPrice * 100).rounded())]
            }
            guard let declared = request.number("declaredPriceFen") else { return [:] }
            let hash = property.utf8.reduce(UInt64(14_695_981_039_346_656_037)) {
                ($0 ^ UInt64($1)) &* 1_099_511_628_211
            }
            let percent = 100 + Double(hash % 26)
            // Whole yuan, as a valuation report states it.
            return ["assessedPriceFen": Int64((declared * percent / 100 / 100).rounded()) * 100]
        case .tax:
            let prices = [request.number("declaredPriceFen"), request.number("assessedPriceFen")].compactMap { $0 }
            guard let taxable = prices.max() else { return [:] }
            return ["assessedTaxFen": Int64((taxable * 3 / 100).rounded())]
        default:
            return [:]
        }
    }
}

/// How a department decides an approval request: after a processing time in working days,
/// approve — issuing a licence number in the department's format — or reject with a reason by a
/// deterministic rule, so the workflows run end to end without people.
///
/// | department | working days | rejects when |
/// |---|---|---|
/// | household-registry | 1 | the destination is outside Foshan; an associate degree without a Foshan employer |
/// | social-security | 2 | `details.insured` is false (no contributions in Foshan) |
/// | tax | 1 | the declared price is under 70% of the assessed price |
/// | real-estate | 1 | the property is mortgaged or sealed up (`details.mortgaged`, `details.sealedUp`) |
/// | market-regulation | 1 | no business name, or one with 中国/中华/国家 |
/// | food-safety | 5 | premises under 20 m², or no floor plan (经营场所平面图) among the materials |
/// | fire-safety | 7 | no fire exit (`details.fireExits` 0, `details.hasFireExits` false); over 200 seats, one exit |
/// | environment | 3 | a restaurant without a fume purifier (`details.fumePurifier` false) |
/// | urban-management | 3 | a signboard wider than 10 m or higher than 2 m |
///
/// Every department rejects an applicant resident ID number whose check character is wrong. What an
/// approval establishes for later steps (a valuation's assessed price, the tax assessed):
/// ``DecisionFields``.
public struct DecisionPolicy: Sendable {
    /// The department.
    public let department: DepartmentID
    /// Working days from the day a request arrives to the day it is decided (decisions are made
    /// from ``decisionHour`` on that day, China time).
    public let processingDays: Int
    /// The prefix of the deciding officer's number, e.g. `FS` → `FS-0417`.
    public let officerPrefix: String
    /// What the licence, permit or certificate of an approval is called.
    public let licenceName: String?
    let rejection: @Sendable (ApprovalRequest) -> String?
    let licence: @Sendable (ApprovalRequest, Int, CivilDate) -> String?

    /// The hour of the day (China time) decisions are made from. 9.
    public static let decisionHour = 9

    /// The decision on a request; `serial` numbers the department's licences, `day` is today.
    public func decide(_ request: ApprovalRequest, serial: Int, on day: CivilDate) -> Decision {
        if let id = request.applicantResidentId, let problem = ResidentIDNumber.problem(in: id) {
            return Decision(outcome: .rejected, reason: "申请人公民身份号码校验不通过（\(problem)），请核对身份证件", licenceNumber: nil)
        }
        if let reason = rejection(request) {
            return Decision(outcome: .rejected, reason: reason, licenceNumber: nil)
        }
        return Decision(outcome: .approved, reason: nil, licenceNumber: licence(request, serial, day))
    }

    /// The deciding officer, stable for an application: `FS-0417`.
    public func officer(for applicationId: String) -> String {
        let hash = applicationId.utf8.reduce(UInt64(14_695_981_039_346_656_037)) {
            ($0 ^ UInt64($1)) &* 1_099_511_628_211
        }
        return "\(officerPrefix)-\(pad(1000 + Int(hash % 9000), 4))"
    }

    static let householdRegistry = DecisionPolicy(
        department: .householdRegistry, processingDays: 1, officerPrefix: "HJ", licenceName: "户口迁移准迁证",
        rejection: { request in
            let address = request.text("toAddress") ?? request.text("address")
            if let address, !address.contains("佛山") {
                return "落户地址不在佛山市辖区，请向迁入地公安机关申请"
            }
            if request.text("degree") == "associate", request.text("employerCreditCode") == nil {
                return "大专学历人员申请落户须在佛山市就业并参加社会保险"
            }
            return nil
        },
        licence: { _, serial, day in "粤佛准迁字\(day.year)第\(pad(serial % 1_000_000, 6))号" })

    static let socialSecurity = DecisionPolicy(
        department: .socialSecurity, processingDays: 2, officerPrefix: "SB", licenceName: nil,
        rejection: { request in
            request.flag("insured") == false ? "未查询到申请人在佛山市的社会保险参保缴费记录" : nil
        },
        licence: { _, _, _ in nil })

    static let tax = DecisionPolicy(
        department: .tax, processingDays: 1, officerPrefix: "SW", licenceName: "税收完税证明",
        rejection: { request in
            if let declared = request.number("declaredPriceFen"), let assessed = request.number("assessedPriceFen"),
                declared < assessed * 0.7
            {
                return "申报成交价格明显偏低且无正当理由，须按评估价格核定计税（《税收征收管理法》第三十五条）"
            }
            return nil
        },
        licence: { _, serial, day in
            "244066" + pad(day.year % 100, 2) + pad(day.month, 2) + pad(serial % 10_000_000_000, 10)
        })

    static let realEstate = DecisionPolicy(
        department: .realEstate, processingDays: 1, officerPrefix: "BDC", licenceName: "不动产权证书",
        rejection: { request in
            if request.flag("sealedUp") == true { return "该不动产已被司法查封，暂停办理转移登记" }
            if request.flag("mortgaged") == true { return "该不动产存在未注销的抵押登记，须先办理抵押权注销登记" }
            return nil
        },
        licence: { _, serial, day in "粤(\(day.year))佛禅不动产权第\(pad(serial % 10_000_000, 7))号" })

    static let marketRegulation = DecisionPolicy(
        department: .marketRegulation, processingDays: 1, officerPrefix: "SJ", licenceName: "营业执照（统一社会信用代码）",
        rejection: { request in
            guard let name = businessName(request), name.count >= 4 else { return "未申报企业（字号）名称，请补充后重新申请" }
            if ["中国", "中华", "国家", "全国"].contains(where: name.contains) {
                return "企业名称含有“中国”“中华”“国家”等字词，须经国家市场监督管理总局核准"
            }
            return nil
        },
        licence: { request, serial, _ in
            if let code = request.applicantCreditCode, UnifiedSocialCreditCode.problem(in: code) == nil { return code }
            var rng = SeededGenerator(seed: UInt64(serial) &* 2_654_435_761 &+ 440_604)
            let name = businessName(request) ?? ""
            return Vocabulary.creditCode(individual: !name.contains("公司"), &rng)
        })

    static let foodSafety = DecisionPolicy(
        department: .foodSafety, processingDays: 5, officerPrefix: "SP", licenceName: "食品经营许可证",
        rejection: { request in
            if let area = request.number("areaSquareMetres"), area < 20 {
                return "经营场所使用面积不足20平方米，不符合《广东省食品经营许可审查细则》"
            }
            if !request.materialNames.contains(where: { $0.contains("平面图") }) {
                return "未提交经营场所平面图（须标明设备布局和操作流程），请补充后重新申请"
            }
            return nil
        },
        licence: { _, serial, _ in RowFactory.foodLicenceNumber(form: "2", serial: serial) })

    static let fireSafety = DecisionPolicy(
        department: .fireSafety, processingDays: 7, officerPrefix: "XF", licenceName: "公众聚集场所投入使用、营业前消防安全检查合格证",
        rejection: { request in
            if request.flag("hasFireExits") == false || request.number("fireExits") == 0 {
                return "未设置安全出口，不符合《建筑设计防火规范》GB 50016-2014"
            }
            if let seats = request.number("seats"), seats > 200, let exits = request.number("fireExits"), exits < 2 {
                return "座位超过200个的餐饮场所安全出口不应少于2个（《建筑设计防火规范》GB 50016-2014）"
            }
            return nil
        },
        licence: { _, serial, day in "佛禅消安检字〔\(day.year)〕第\(pad(serial % 10_000, 4))号" })

    static let environment = DecisionPolicy(
        department: .environment, processingDays: 3, officerPrefix: "HB", licenceName: "建设项目环境影响登记表备案",
        rejection: { request in
            request.flag("fumePurifier") == false
                ? "未配套安装油烟净化设施，不符合《饮食业油烟排放标准》GB 18483-2001" : nil
        },
        licence: { _, serial, day in "\(day.year)440604\(pad(serial % 100_000_000, 8))" })

    static let urbanManagement = DecisionPolicy(
        department: .urbanManagement, processingDays: 3, officerPrefix: "CG", licenceName: "户外招牌设置许可",
        rejection: { request in
            if let width = request.number("signboardWidthMetres"), width > 10 {
                return "招牌宽度超过10米，不符合《佛山市户外招牌设置技术规范》"
            }
            if let height = request.number("signboardHeightMetres"), height > 2 {
                return "招牌高度超过2米，不符合《佛山市户外招牌设置技术规范》"
            }
            return nil
        },
        licence: { request, serial, day in
            request.flag("hasOutdoorSignboard") == false ? nil : "CCZP\(day.year)-\(pad(serial % 10_000, 4))"
        })

    static func businessName(_ request: ApprovalRequest) -> String? {
        request.text("businessName") ?? request.text("name")
            ?? request.body[pointer: "/details/business/name"]?.stringValue
    }
}
