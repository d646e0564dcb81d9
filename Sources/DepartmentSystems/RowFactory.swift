import CivilTime
import Foundation
import GRDB

/// How to write realistic rows of one source table, and how to spoil one for a test of the
/// connector's dead letters.
struct TableSpec: Sendable {
    /// The table.
    let table: String
    /// The columns `make` fills, in order (besides `change_seq` and `modified_at`).
    let columns: [String]
    /// Columns holding a resident ID number or a credit code (a corrupted check character).
    let identifierColumns: [String]
    /// Columns whose event field is required (a NULL there fails validation).
    let requiredColumns: [String]
    /// Columns holding a date or an instant (a date that is not a date fails mapping).
    let dateColumns: [String]
    /// One good row.
    let make: @Sendable (inout RowContext) -> [DatabaseValue]
    /// The insert statement (arguments: `modified_at`, then `columns`): `change_seq` is `MAX + 1`
    /// inside the transaction.
    let insertSQL: String
    /// The update statement of an existing row (arguments: `modified_at`, `id`): a new version and
    /// a new `change_seq`.
    let updateSQL: String

    init(
        table: String, columns: [String], identifierColumns: [String], requiredColumns: [String],
        dateColumns: [String], make: @escaping @Sendable (inout RowContext) -> [DatabaseValue]
    ) {
        self.table = table
        self.columns = columns
        self.identifierColumns = identifierColumns
        self.requiredColumns = requiredColumns
        self.dateColumns = dateColumns
        self.make = make
        let names = (["change_seq", "modified_at"] + columns).map(quoted).joined(separator: ", ")
        let values = ([nextChangeSeq(table), "?"] + columns.map { _ in "?" }).joined(separator: ", ")
        insertSQL = "INSERT INTO \(quoted(table)) (\(names)) VALUES (\(values))"
        updateSQL = """
            UPDATE \(quoted(table)) SET version = version + 1, change_seq = \(nextChangeSeq(table)), modified_at = ? \
            WHERE id = ?
            """
    }
}

/// What a row builder reads: the random source, the simulated world, the time and a serial number.
struct RowContext {
    var rng: SeededGenerator
    let world: WorldPools
    var serial: Int
    /// The time rows are stamped with (one value per transaction).
    private(set) var now: Date
    /// `now`'s day in China.
    private(set) var today: CivilDate
    /// `now` as `YYYY-MM-DD HH:MM:SS` China time.
    private(set) var local: String

    init(rng: SeededGenerator, world: WorldPools, now: Date, serial: Int) {
        self.rng = rng
        self.world = world
        self.serial = serial
        self.now = now
        today = CivilDate.china(now)
        local = ChinaTime.local(now)
    }

    /// Moves the stamp to `date`.
    mutating func setNow(_ date: Date) {
        now = date
        today = CivilDate.china(date)
        local = ChinaTime.local(date)
    }

    var yearText: String { String(today.year) }

    /// The previous month as `YYYY-MM`.
    var lastMonth: String {
        let day = today
        return day.month == 1 ? "\(day.year - 1)-12" : "\(day.year)-\(pad(day.month - 1, 2))"
    }

    mutating func next() -> Int {
        serial += 1
        return serial
    }
}

/// The simulated world, arranged for fast picking.
struct WorldPools: Sendable {
    let world: SyntheticWorld
    let adults: [Person]
    let elderly: [Person]
    let couples: [(mother: Person, father: Person)]
    let restaurants: [Company]

    init(_ world: SyntheticWorld, today: CivilDate) {
        self.world = world
        adults = world.people.filter { today.year - $0.birthDate.year >= 22 }
        let old = world.people.filter { today.year - $0.birthDate.year >= 60 }
        elderly = old.isEmpty ? world.people : old
        var couples: [(Person, Person)] = []
        let byHousehold = Dictionary(grouping: world.people, by: \.householdNumber)
        for members in byHousehold.values.sorted(by: { $0[0].householdNumber < $1[0].householdNumber }) {
            guard let head = members.first(where: { $0.relationCode == "02" }),
                let spouse = members.first(where: { ["10", "11", "12"].contains($0.relationCode) }),
                today.year - head.birthDate.year < 46 || today.year - spouse.birthDate.year < 46
            else { continue }
            couples.append(head.genderCode == "2" ? (head, spouse) : (spouse, head))
        }
        if couples.isEmpty {
            let women = world.people.filter { $0.genderCode == "2" }
            let men = world.people.filter { $0.genderCode == "1" }
            couples = zip(women, men).map { ($0, $1) }
        }
        self.couples = couples.map { (mother: $0.0, father: $0.1) }
        restaurants = world.companies.filter(\.isRestaurant)
    }

    /// The 13-digit social security person number (个人编号) of a resident.
    func personNumber(_ person: Person) -> String {
        "4406" + String(person.residentId.dropFirst(8).prefix(8)) + String(person.residentId.dropFirst(16).prefix(1))
    }

    /// The employer of a working-age resident (stable for the person).
    func employer(of person: Person) -> Company {
        let hash = person.residentId.utf8.reduce(UInt64(14_695_981_039_346_656_037)) {
            ($0 ^ UInt64($1)) &* 1_099_511_628_211
        }
        return world.companies[Int(hash % UInt64(world.companies.count))]
    }
}

extension DatabaseValue {
    static func text(_ value: String?) -> DatabaseValue { value.map { $0.databaseValue } ?? .null }
    static func int(_ value: Int?) -> DatabaseValue { value.map { $0.databaseValue } ?? .null }
}

/// Two decimals, as departments store areas and yuan amounts: `96.5` → `96.50`.
func decimal(_ value: Double) -> String {
    let hundredths = Int((value * 100).rounded())
    return "\(hundredths / 100).\(pad(hundredths % 100, 2))"
}

/// The source tables of every department and how their rows look.
enum RowFactory {
    static func specs(for department: DepartmentID) -> [TableSpec] {
        switch department {
        case .householdRegistry: [births, deaths, moves, memberChanges]
        case .socialSecurity: [enrolments, contributions, pensionCertifications]
        case .tax: [taxpayers, taxPayments, clearances]
        case .realEstate: [contracts, valuations, registrations]
        case .marketRegulation: [enterprises]
        case .foodSafety: [foodLicences]
        case .fireSafety: [fireInspections]
        case .environment: [eiaFilings]
        case .urbanManagement: [signboards]
        case .smsGateway: []
        }
    }

    // MARK: household registry

    static let births = TableSpec(
        table: "birth_registrations",
        columns: [
            "child_id_no", "child_name", "child_gender", "birth_date", "birth_place", "birth_cert_no", "mother_id_no",
            "mother_name", "mother_mobile", "father_id_no", "father_name", "father_mobile", "household_no", "address",
            "police_station", "registered_at",
        ],
        identifierColumns: ["child_id_no", "mother_id_no"],
        requiredColumns: ["child_id_no", "child_name", "mother_id_no", "household_no"],
        dateColumns: ["birth_date", "registered_at"]
    ) { context in
        let couple = context.rng.pick(context.world.couples)
        let birth = context.today.adding(days: -(1 + context.rng.below(40)))
        let male = context.rng.chance(0.52)
        let child = Vocabulary.residentId(birth: birth, male: male, &context.rng)
        let name = String(couple.father.name.first!) + Vocabulary.name(&context.rng, male: male).dropFirst()
        let withFather = context.rng.chance(0.93)
        return [
            .text(child), .text(name), .text(male ? "1" : "2"), .text(birth.compact),
            .text(context.rng.pick(Vocabulary.hospitals)), .text("R44" + context.rng.digits(7)),
            .text(couple.mother.residentId), .text(couple.mother.name), .text(couple.mother.mobile),
            .text(withFather ? couple.father.residentId : nil), .text(withFather ? couple.father.name : nil),
            .text(withFather && context.rng.chance(0.6) ? couple.father.mobile : nil),
            .text(couple.father.householdNumber), .text(couple.father.address), .text(couple.father.policeStation),
            .text(context.local),
        ]
    }

    static let deaths = TableSpec(
        table: "death_registrations",
        columns: [
            "id_no", "name", "death_date", "death_place", "death_cert_no", "household_no", "police_station",
            "registered_at",
        ],
        identifierColumns: ["id_no"], requiredColumns: ["id_no", "death_date", "registered_at"],
        dateColumns: ["death_date", "registered_at"]
    ) { context in
        let person = context.rng.pick(context.world.elderly)
        let day = context.today.adding(days: -(1 + context.rng.below(10)))
        let place = context.rng.chance(0.7) ? context.rng.pick(Vocabulary.hospitals) : "家中"
        return [
            .text(person.residentId), .text(person.name), .text(day.compact), .text(place),
            .text("440604" + String(day.year) + context.rng.digits(6)), .text(person.householdNumber),
            .text(person.policeStation), .text(context.local),
        ]
    }

    static let moves = TableSpec(
        table: "migration_records",
        columns: [
            "id_no", "name", "direction", "reason_code", "from_address", "to_address", "household_no", "permit_no",
            "police_station", "registered_at",
        ],
        identifierColumns: ["id_no"], requiredColumns: ["id_no", "direction", "to_address", "registered_at"],
        dateColumns: ["registered_at"]
    ) { context in
        if context.rng.chance(0.7) {
            let male = context.rng.chance(0.5)
            let year = context.today.year - 21 - context.rng.below(18)
            let birth = CivilDate(year: year, month: 1 + context.rng.below(12), day: 1 + context.rng.below(28))!
            let id = Vocabulary.residentId(
                region: context.rng.pick(Vocabulary.otherRegions), birth: birth, male: male, &context.rng)
            let household = context.rng.pick(context.world.world.people)
            return [
                .text(id), .text(Vocabulary.name(&context.rng, male: male)), .text("1"),
                .text(context.rng.pick(["01", "01", "02", "03", "04", "99"])),
                .text(context.rng.pick(Vocabulary.otherPlaces)), .text(household.address),
                .text(household.householdNumber),
                .text("粤佛准迁字\(context.yearText)第\(pad(context.next() % 1_000_000, 6))号"),
                .text(household.policeStation), .text(context.local),
            ]
        }
        let person = context.rng.pick(context.world.adults)
        return [
            .text(person.residentId), .text(person.name), .text("2"),
            .text(context.rng.pick(["02", "03", "04", "99"])),
            .text(person.address), .text(context.rng.pick(Vocabulary.otherPlaces)), .text(person.householdNumber),
            .null, .text(person.policeStation), .text(context.local),
        ]
    }

    static let memberChanges = TableSpec(
        table: "household_member_changes",
        columns: ["household_no", "change_type", "id_no", "name", "relation_code", "police_station", "changed_at"],
        identifierColumns: ["id_no"], requiredColumns: ["household_no", "change_type", "id_no", "changed_at"],
        dateColumns: ["changed_at"]
    ) { context in
        let person = context.rng.pick(context.world.world.people)
        let change = context.rng.pick(["1", "1", "2", "3"])
        let relation =
            change == "3"
            ? "02" : context.rng.pick(["10", "11", "12", "20", "21", "30", "31", "41", "42", "51", "52", "99"])
        return [
            .text(person.householdNumber), .text(change), .text(person.residentId), .text(person.name), .text(relation),
            .text(person.policeStation), .text(context.local),
        ]
    }

    // MARK: social security

    static let employeeSchemes = ["110", "310", "210", "410", "510"]

    static let enrolments = TableSpec(
        table: "enrolments",
        columns: [
            "person_no", "id_card_no", "name", "insurance_type", "employer_credit_code", "begin_date", "agency",
            "handled_at",
        ],
        identifierColumns: ["id_card_no"], requiredColumns: ["id_card_no", "insurance_type", "begin_date"],
        dateColumns: ["begin_date", "handled_at"]
    ) { context in
        let person = context.rng.pick(context.world.adults)
        let scheme = context.rng.pick(["110", "110", "310", "310", "210", "410", "510", "170", "390"])
        let employee = employeeSchemes.contains(scheme)
        let today = context.today
        let begin = CivilDate(
            year: today.month == 12 ? today.year + 1 : today.year, month: today.month % 12 + 1, day: 1)!
        return [
            .text(context.world.personNumber(person)), .text(person.residentId), .text(person.name), .text(scheme),
            .text(employee ? context.world.employer(of: person).creditCode : nil), .text(begin.compact),
            .text("佛山市社会保险基金管理局禅城分局"), .text(context.local),
        ]
    }

    static let contributions = TableSpec(
        table: "contributions",
        columns: [
            "person_no", "id_card_no", "insurance_type", "fee_period", "contribution_base_fen", "personal_amount_fen",
            "unit_amount_fen", "employer_credit_code", "voucher_no", "paid_at",
        ],
        identifierColumns: ["id_card_no"],
        requiredColumns: ["id_card_no", "insurance_type", "personal_amount_fen", "unit_amount_fen"],
        dateColumns: ["paid_at"]
    ) { context in
        let person = context.rng.pick(context.world.adults)
        let scheme = context.rng.pick(employeeSchemes)
        // Guangdong 2025 rates (per mille): pension 8% + 15%, medical 2% + 5.5%, unemployment 0.2% + 0.32%,
        // work injury 0 + 0.4%, maternity 0 + 1%; the base between 4,588 and 27,501 yuan.
        let rates: [String: (Int, Int)] = [
            "110": (80, 150), "310": (20, 55), "210": (2, 3), "410": (0, 4), "510": (0, 10),
        ]
        let base = (4_588 + context.rng.below(15_000)) * 100
        let (personal, unit) = rates[scheme]!
        return [
            .text(context.world.personNumber(person)), .text(person.residentId), .text(scheme),
            .text(context.lastMonth),
            .int(base), .int(base * personal / 1000), .int(base * unit / 1000),
            .text(context.world.employer(of: person).creditCode),
            .text("SB" + context.lastMonth.filter(\.isNumber) + pad(context.next() % 100_000_000, 8)),
            .text(context.local),
        ]
    }

    static let pensionCertifications = TableSpec(
        table: "pension_certifications",
        columns: ["person_no", "id_card_no", "name", "cert_year", "cert_method", "cert_place", "cert_time"],
        identifierColumns: ["id_card_no"], requiredColumns: ["id_card_no", "cert_year", "cert_method", "cert_time"],
        dateColumns: ["cert_time"]
    ) { context in
        let person = context.rng.pick(context.world.elderly)
        let method = context.rng.pick(["1", "1", "1", "1", "4", "4", "2", "3"])
        let place = ["1": "粤省事人脸识别", "2": "禅城区社会保险服务大厅", "3": "上门认证", "4": "数据比对"][method]!
        return [
            .text(context.world.personNumber(person)), .text(person.residentId), .text(person.name),
            .text(context.yearText), .text(method), .text(place), .text(context.local),
        ]
    }

    // MARK: tax

    static let taxOffices = [
        "国家税务总局佛山市禅城区税务局", "国家税务总局佛山市禅城区税务局祖庙税务所", "国家税务总局佛山市禅城区税务局石湾税务所",
    ]

    static let taxpayers = TableSpec(
        table: "taxpayers",
        columns: [
            "taxpayer_id", "taxpayer_name", "taxpayer_type", "legal_rep_name", "legal_rep_id_no", "legal_rep_mobile",
            "industry_code", "tax_authority", "registered_at",
        ],
        identifierColumns: ["taxpayer_id", "legal_rep_id_no"],
        requiredColumns: ["taxpayer_id", "taxpayer_name", "taxpayer_type", "registered_at"],
        dateColumns: ["registered_at"]
    ) { context in
        let company = newCompany(&context)
        let individual = company.entityTypeCode == "9600"
        return [
            .text(company.creditCode), .text(company.name),
            .text(individual ? "3" : context.rng.chance(0.3) ? "1" : "2"), .text(company.legalRepresentative.name),
            .text(company.legalRepresentative.residentId), .text(company.legalRepresentative.mobile),
            .text(company.isRestaurant ? "6210" : context.rng.pick(["5137", "3389", "6513", "7020", "5232"])),
            .text(context.rng.pick(taxOffices)), .text(context.local),
        ]
    }

    static let taxPayments = TableSpec(
        table: "tax_payments",
        columns: [
            "taxpayer_id", "taxpayer_name", "levy_item_code", "tax_period", "amount_fen", "amount_yuan", "voucher_no",
            "paid_at",
        ],
        identifierColumns: ["taxpayer_id"],
        requiredColumns: ["taxpayer_id", "levy_item_code", "amount_fen", "voucher_no"],
        dateColumns: ["paid_at"]
    ) { context in
        let id: String
        let name: String
        let item: String
        let amount: Int
        if context.rng.chance(0.5) {
            let company = context.rng.pick(context.world.world.companies)
            id = company.creditCode
            name = company.name
            item = context.rng.pick(["10101", "10101", "10104", "10111"])
            amount = (50 + context.rng.below(200_000)) * 100
        } else {
            let person = context.rng.pick(context.world.adults)
            id = person.residentId
            name = person.name
            item = context.rng.pick(["10106", "10106", "10119", "10113", "10111"])
            amount =
                item == "10119" ? (15_000 + context.rng.below(60_000)) * 100 : (10 + context.rng.below(8_000)) * 100
        }
        let today = context.today
        return [
            .text(id), .text(name), .text(item), .text(context.lastMonth), .int(amount),
            .text(decimal(Double(amount) / 100)),
            .text("344066" + String(today.year % 100) + pad(today.month, 2) + pad(context.next() % 10_000_000_000, 10)),
            .text(context.local),
        ]
    }

    static let clearances = TableSpec(
        table: "clearance_certificates",
        columns: ["taxpayer_id", "certificate_no", "purpose_code", "property_unit_no", "amount_fen", "issued_at"],
        identifierColumns: ["taxpayer_id"], requiredColumns: ["taxpayer_id", "certificate_no", "purpose_code"],
        dateColumns: ["issued_at"]
    ) { context in
        let property = context.rng.pick(context.world.world.properties)
        let house = context.rng.chance(0.8)
        let person = house ? context.rng.pick(context.world.adults) : property.owner
        let today = context.today
        return [
            .text(person.residentId),
            .text("244066" + String(today.year % 100) + pad(today.month, 2) + pad(context.next() % 10_000_000_000, 10)),
            .text(house ? "01" : context.rng.pick(["02", "03", "99"])), .text(house ? property.unitNumber : nil),
            .int(house ? (20_000 + context.rng.below(80_000)) * 100 : nil), .text(context.local),
        ]
    }

    // MARK: real estate

    static func price(of property: Property) -> Int {
        Int(property.areaSquareMetres * Double(property.unitPriceFen)) / 10_000 * 10_000
    }

    static let contracts = TableSpec(
        table: "transfer_contracts",
        columns: [
            "contract_no", "unit_no", "location", "building_area", "total_price_fen", "seller_name", "seller_cert_no",
            "seller_mobile", "buyer_name", "buyer_cert_no", "buyer_mobile", "signed_at",
        ],
        identifierColumns: ["seller_cert_no", "buyer_cert_no"],
        requiredColumns: ["contract_no", "unit_no", "seller_cert_no", "buyer_name", "total_price_fen"],
        dateColumns: ["signed_at"]
    ) { context in
        let property = context.rng.pick(context.world.world.properties)
        var buyer = context.rng.pick(context.world.adults)
        if buyer.residentId == property.owner.residentId { buyer = context.world.adults[0] }
        let agreed = price(of: property) / 100 * (90 + context.rng.below(20))
        return [
            .text("FS\(context.yearText)CC\(pad(context.next() % 1_000_000, 6))"), .text(property.unitNumber),
            .text(property.address), .text(decimal(property.areaSquareMetres)), .int(agreed / 10_000 * 10_000),
            .text(property.owner.name), .text(property.owner.residentId), .text(property.owner.mobile),
            .text(buyer.name), .text(buyer.residentId), .text(context.rng.chance(0.8) ? buyer.mobile : nil),
            .text(context.local),
        ]
    }

    static let valuations = TableSpec(
        table: "valuations",
        columns: [
            "unit_no", "assessed_price_fen", "declared_price_fen", "assessed_unit_price", "method", "completed_at",
        ],
        identifierColumns: [], requiredColumns: ["unit_no", "assessed_price_fen"], dateColumns: ["completed_at"]
    ) { context in
        let property = context.rng.pick(context.world.world.properties)
        let assessed = price(of: property)
        let declared = assessed / 100 * (80 + context.rng.below(25)) / 10_000 * 10_000
        return [
            .text(property.unitNumber), .int(assessed), .int(declared),
            .text(decimal(Double(property.unitPriceFen) / 100)), .text(context.rng.chance(0.85) ? "1" : "2"),
            .text(context.local),
        ]
    }

    static let registrations = TableSpec(
        table: "registrations",
        columns: [
            "unit_no", "registration_type", "certificate_no", "right_holder_name", "right_holder_cert_no",
            "right_holder_mobile", "obligor_name", "obligor_cert_no", "registered_at",
        ],
        identifierColumns: ["right_holder_cert_no", "obligor_cert_no"],
        requiredColumns: ["unit_no", "certificate_no", "right_holder_name", "right_holder_cert_no"],
        dateColumns: ["registered_at"]
    ) { context in
        let property = context.rng.pick(context.world.world.properties)
        let buyer = context.rng.pick(context.world.adults)
        return [
            .text(property.unitNumber), .text("转移登记"),
            .text("粤(\(context.yearText))佛禅不动产权第\(pad(context.next() % 10_000_000, 7))号"), .text(buyer.name),
            .text(buyer.residentId), .text(buyer.mobile), .text(property.owner.name), .text(property.owner.residentId),
            .text(context.local),
        ]
    }

    // MARK: market regulation and the licensing departments

    /// A company registered today.
    static func newCompany(_ context: inout RowContext) -> Company {
        var company = context.rng.pick(context.world.world.companies)
        let individual = company.entityTypeCode == "9600"
        company.creditCode = Vocabulary.creditCode(individual: individual, &context.rng)
        let brand =
            company.isRestaurant
            ? context.rng.pick(Vocabulary.restaurantBrands) : context.rng.pick(Vocabulary.otherBrands)
        let branch = context.rng.pick(Vocabulary.roads).replacingOccurrences(of: "路", with: "")
        company.name =
            company.isRestaurant
            ? (individual ? "佛山市禅城区\(brand)\(branch)餐饮店" : "佛山市\(brand)\(branch)餐饮管理有限公司")
            : company.name.replacingOccurrences(of: "佛山市", with: "佛山市\(branch)")
        company.legalRepresentative = context.rng.pick(context.world.adults)
        company.address = Vocabulary.shopAddress(&context.rng)
        company.established = context.today
        return company
    }

    static let enterprises = TableSpec(
        table: "enterprises",
        columns: [
            "credit_code", "enterprise_name", "enterprise_type", "legal_rep_name", "legal_rep_id_no",
            "legal_rep_mobile",
            "domicile", "business_scope", "registered_capital_fen", "established_date", "registration_authority",
            "approved_at",
        ],
        identifierColumns: ["credit_code", "legal_rep_id_no"],
        requiredColumns: ["credit_code", "enterprise_name", "enterprise_type", "legal_rep_id_no", "domicile"],
        dateColumns: ["approved_at"]
    ) { context in
        let company = newCompany(&context)
        return enterpriseRow(company, context.local)
    }

    static func enterpriseRow(_ company: Company, _ local: String) -> [DatabaseValue] {
        [
            .text(company.creditCode), .text(company.name), .text(company.entityTypeCode),
            .text(company.legalRepresentative.name), .text(company.legalRepresentative.residentId),
            .text(company.legalRepresentative.mobile), .text(company.address), .text(company.scope),
            .int(company.capitalFen), .text(company.established.compact), .text("佛山市禅城区市场监督管理局"), .text(local),
        ]
    }

    /// `JY` + business form + region + 6-digit serial + a check digit: 14 digits after `JY`.
    static func foodLicenceNumber(form: String, serial: Int) -> String {
        let body = form + "440604" + pad(serial % 1_000_000, 6)
        let check = body.utf8.enumerated().reduce(0) { $0 + Int($1.element - 48) * ($1.offset % 2 == 0 ? 3 : 1) } % 10
        return "JY" + body + String(check)
    }

    static let foodLicences = TableSpec(
        table: "food_licences",
        columns: [
            "licence_no", "credit_code", "operator_name", "business_form", "premises_address", "premises_area",
            "valid_from", "valid_to", "issuing_authority", "issued_at",
        ],
        identifierColumns: ["credit_code"],
        requiredColumns: ["licence_no", "credit_code", "business_form", "valid_from", "valid_to"],
        dateColumns: ["valid_from", "valid_to", "issued_at"]
    ) { context in
        let company = context.rng.chance(0.3) ? context.rng.pick(context.world.restaurants) : newCompany(&context)
        let form = company.isRestaurant ? context.rng.pick(["2", "2", "2", "4", "3"]) : "1"
        return foodLicenceRow(
            company, form: form, area: Double(2_000 + context.rng.below(30_000)) / 100,
            number: foodLicenceNumber(form: form, serial: context.next()), today: context.today, local: context.local)
    }

    static func foodLicenceRow(
        _ company: Company, form: String, area: Double, number: String, today: CivilDate,
        local: String
    ) -> [DatabaseValue] {
        let until = CivilDate(year: today.year + 5, month: today.month, day: min(today.day, 28))!.adding(days: -1)
        return [
            .text(number), .text(company.creditCode), .text(company.name), .text(form), .text(company.address),
            .text(decimal(area)), .text(today.compact), .text(until.compact), .text("佛山市禅城区市场监督管理局"), .text(local),
        ]
    }

    static let fireFindings = [
        "疏散通道堆放杂物", "应急照明灯不亮", "灭火器压力不足", "燃气报警装置未安装", "安全出口标志缺失", "消防车通道被占用",
    ]

    static let fireInspections = TableSpec(
        table: "fire_inspections",
        columns: [
            "inspection_no", "credit_code", "venue_name", "venue_address", "result", "findings", "inspector_no",
            "certificate_no", "inspected_at",
        ],
        identifierColumns: ["credit_code"], requiredColumns: ["credit_code", "venue_address", "result"],
        dateColumns: ["inspected_at"]
    ) { context in
        let company = context.rng.chance(0.3) ? context.rng.pick(context.world.restaurants) : newCompany(&context)
        let passed = context.rng.chance(0.85)
        let findings = passed ? [] : [context.rng.pick(fireFindings)]
        return fireInspectionRow(
            company, passed: passed, findings: findings, inspector: "FS-CC-0\(100 + context.rng.below(900))",
            serial: context.next(), today: context.today, local: context.local)
    }

    static func fireInspectionRow(
        _ company: Company, passed: Bool, findings: [String], inspector: String, serial: Int,
        today: CivilDate, local: String
    ) -> [DatabaseValue] {
        let json = "[" + findings.map { "\"\($0)\"" }.joined(separator: ",") + "]"
        return [
            .text("XJ\(today.compact)\(pad(serial % 10_000, 4))"), .text(company.creditCode), .text(company.name),
            .text(company.address), .text(passed ? "1" : "2"), .text(json), .text(inspector),
            .text(passed ? "佛禅消安检字〔\(today.year)〕第\(pad(serial % 10_000, 4))号" : nil), .text(local),
        ]
    }

    static let eiaFilings = TableSpec(
        table: "eia_filings",
        columns: ["filing_no", "credit_code", "project_name", "project_address", "fume_purifier", "filed_at"],
        identifierColumns: ["credit_code"], requiredColumns: ["filing_no", "credit_code", "project_name"],
        dateColumns: ["filed_at"]
    ) { context in
        let company = context.rng.chance(0.3) ? context.rng.pick(context.world.restaurants) : newCompany(&context)
        return eiaRow(
            company, purifier: context.rng.chance(0.9), serial: context.next(), today: context.today,
            local: context.local)
    }

    static func eiaRow(
        _ company: Company, purifier: Bool, serial: Int, today: CivilDate, local: String
    ) -> [DatabaseValue] {
        [
            .text("\(today.year)440604\(pad(serial % 100_000_000, 8))"), .text(company.creditCode),
            .text("\(company.name)\(company.isRestaurant ? "油烟排放" : "建设项目")"), .text(company.address),
            .text(purifier ? "Y" : "N"), .text(local),
        ]
    }

    static let signboards = TableSpec(
        table: "signboard_permits",
        columns: ["permit_no", "credit_code", "shop_name", "address", "width_m", "height_m", "approved_at"],
        identifierColumns: ["credit_code"], requiredColumns: ["permit_no", "credit_code", "address"],
        dateColumns: ["approved_at"]
    ) { context in
        let company = context.rng.chance(0.3) ? context.rng.pick(context.world.restaurants) : newCompany(&context)
        return signboardRow(
            company, width: Double(150 + context.rng.below(850)) / 100,
            height: Double(60 + context.rng.below(140)) / 100,
            serial: context.next(), today: context.today, local: context.local)
    }

    static func signboardRow(
        _ company: Company, width: Double, height: Double, serial: Int, today: CivilDate,
        local: String
    ) -> [DatabaseValue] {
        [
            .text("CCZP\(today.year)-\(pad(serial % 10_000, 4))"), .text(company.creditCode), .text(company.name),
            .text(company.address), .text(decimal(width)), .text(decimal(height)), .text(local),
        ]
    }
}

/// A non-negative number left-padded with zeros (faster than `String(format:)` on Linux).
@inline(__always)
func pad(_ value: Int, _ width: Int) -> String {
    let text = String(value)
    return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
}
