import CivilTime
import Foundation
import GRDB

/// What seeding wrote, by table.
public struct SeedReport: Sendable, Hashable {
    /// Rows written per table.
    public var rows: [String: Int] = [:]
    /// Whether the database had been seeded before (then nothing was written).
    public var alreadySeeded = false
}

extension DepartmentDatabase {
    /// Fills the department's tables with the simulated Chancheng — a few hundred residents in
    /// their households, companies with valid credit codes, properties — the same people and
    /// companies in every department. Seeding a seeded database writes nothing.
    /// - Parameters:
    ///   - world: the simulated world. Default: 300 residents, 60 companies, 150 properties.
    ///   - clock: the clock whose time is stamped on the rows. Default: the system clock.
    /// - Throws: a database error (nothing is written then).
    @discardableResult
    public func seed(
        world: SyntheticWorld = SyntheticWorld(), clock: any WallClock = .system
    ) async throws -> SeedReport {
        let department = system.id
        let now = clock.now()
        return try await writer.write { db in
            if try String.fetchOne(db, sql: "SELECT value FROM simulator_meta WHERE key = 'seeded_at'") != nil {
                return SeedReport(rows: [:], alreadySeeded: true)
            }
            var report = SeedReport()
            let seeder = Seeding(db: db, world: world, now: now)
            report.rows = try seeder.seed(department)
            try db.execute(
                sql: "INSERT INTO simulator_meta (key, value) VALUES ('seeded_at', ?)",
                arguments: [ChinaTime.rfc3339(now)])
            return report
        }
    }
}

/// The seed rows of each department.
private struct Seeding {
    let db: Database
    let world: SyntheticWorld
    let now: Date

    var local: String { ChinaTime.local(now) }
    var today: CivilDate { CivilDate.china(now) }

    func seed(_ department: DepartmentID) throws -> [String: Int] {
        var counts: [String: Int] = [:]
        func insert(_ spec: TableSpec, _ row: [DatabaseValue]) throws {
            try db.execute(sql: spec.insertSQL, arguments: StatementArguments([local.databaseValue] + row))
            counts[spec.table, default: 0] += 1
        }
        func plain(_ table: String, _ values: [String: DatabaseValue]) throws {
            let columns = values.keys.sorted()
            let names = columns.map(quoted).joined(separator: ", ")
            let placeholders = columns.map { _ in "?" }.joined(separator: ", ")
            try db.execute(
                sql: "INSERT INTO \(quoted(table)) (\(names)) VALUES (\(placeholders))",
                arguments: StatementArguments(columns.map { values[$0]! }))
            counts[table, default: 0] += 1
        }
        let pools = WorldPools(world, today: today)
        var rng = SeededGenerator(seed: 20_140_101)
        switch department {
        case .householdRegistry:
            for (number, members) in Dictionary(grouping: world.people, by: \.householdNumber).sorted(by: {
                $0.key < $1.key
            }) {
                let head = members.first { $0.relationCode == "02" } ?? members[0]
                try plain(
                    "households",
                    [
                        "household_no": .text(number), "household_type": .text("1"),
                        "head_id_no": .text(head.residentId),
                        "address": .text(head.address), "police_station": .text(head.policeStation),
                        "established_on": .text(
                            CivilDate(year: max(1990, head.birthDate.year + 24), month: 3, day: 1)!.compact),
                    ])
            }
            for person in world.people {
                try plain(
                    "residents",
                    [
                        "id_no": .text(person.residentId), "name": .text(person.name),
                        "gender": .text(person.genderCode),
                        "ethnicity": .text("01"), "birth_date": .text(person.birthDate.compact),
                        "household_no": .text(person.householdNumber), "relation_code": .text(person.relationCode),
                        "mobile": .text(person.mobile), "address": .text(person.address),
                        "police_station": .text(person.policeStation), "status": .text("1"),
                    ])
            }
        case .socialSecurity:
            for person in world.people where today.year - person.birthDate.year >= 18 {
                let retired = today.year - person.birthDate.year >= (person.genderCode == "1" ? 60 : 55)
                let employer = pools.employer(of: person)
                try plain(
                    "insured_persons",
                    [
                        "person_no": .text(pools.personNumber(person)), "id_card_no": .text(person.residentId),
                        "name": .text(person.name), "gender": .text(person.genderCode),
                        "birth_date": .text(person.birthDate.compact), "mobile": .text(person.mobile),
                        "employer_credit_code": .text(retired ? nil : employer.creditCode),
                        "insured_status": .text("1"), "retired": .text(retired ? "Y" : "N"),
                    ])
                let schemes = retired ? ["170"] : ["110", "310"]
                for scheme in schemes {
                    let begin = CivilDate(
                        year: max(today.year - 10, person.birthDate.year + 20), month: 1 + rng.below(12), day: 1)!
                    try insert(
                        RowFactory.enrolments,
                        [
                            .text(pools.personNumber(person)), .text(person.residentId), .text(person.name),
                            .text(scheme),
                            .text(retired ? nil : employer.creditCode), .text(begin.compact),
                            .text("佛山市社会保险基金管理局禅城分局"), .text(local),
                        ])
                }
                if retired {
                    try insert(
                        RowFactory.pensionCertifications,
                        [
                            .text(pools.personNumber(person)), .text(person.residentId), .text(person.name),
                            .text(String(today.year)), .text("1"), .text("粤省事人脸识别"), .text(local),
                        ])
                }
            }
        case .tax:
            for company in world.companies {
                try insert(
                    RowFactory.taxpayers,
                    [
                        .text(company.creditCode), .text(company.name),
                        .text(company.entityTypeCode == "9600" ? "3" : "2"),
                        .text(company.legalRepresentative.name), .text(company.legalRepresentative.residentId),
                        .text(company.legalRepresentative.mobile), .text(company.isRestaurant ? "6210" : "5137"),
                        .text(RowFactory.taxOffices[0]), .text(local),
                    ])
            }
        case .realEstate:
            for property in world.properties {
                try plain(
                    "properties",
                    [
                        "unit_no": .text(property.unitNumber), "location": .text(property.address),
                        "building_area": .text(decimal(property.areaSquareMetres)), "usage": .text("住宅"),
                        "owner_name": .text(property.owner.name), "owner_cert_no": .text(property.owner.residentId),
                        "owner_mobile": .text(property.owner.mobile),
                        "certificate_no": .text(property.certificateNumber),
                        "mortgaged": .int(property.mortgaged ? 1 : 0),
                        "reference_unit_price": .text(decimal(Double(property.unitPriceFen) / 100)),
                    ])
            }
        case .marketRegulation:
            for company in world.companies {
                try insert(RowFactory.enterprises, RowFactory.enterpriseRow(company, local))
            }
        case .foodSafety:
            for (index, company) in pools.restaurants.enumerated() {
                try insert(
                    RowFactory.foodLicences,
                    RowFactory.foodLicenceRow(
                        company, form: "2", area: Double(3_000 + rng.below(20_000)) / 100,
                        number: RowFactory.foodLicenceNumber(form: "2", serial: 1 + index), today: company.established,
                        local: local))
            }
        case .fireSafety:
            for (index, company) in pools.restaurants.enumerated() {
                try insert(
                    RowFactory.fireInspections,
                    RowFactory.fireInspectionRow(
                        company, passed: true, findings: [], inspector: "FS-CC-0\(100 + rng.below(900))",
                        serial: 1 + index,
                        today: company.established, local: local))
            }
        case .environment:
            for (index, company) in pools.restaurants.enumerated() {
                try insert(
                    RowFactory.eiaFilings,
                    RowFactory.eiaRow(
                        company, purifier: true, serial: 1 + index, today: company.established, local: local))
            }
        case .urbanManagement:
            for (index, company) in pools.restaurants.enumerated() {
                try insert(
                    RowFactory.signboards,
                    RowFactory.signboardRow(
                        company, width: Double(200 + rng.below(600)) / 100, height: Double(80 + rng.below(100)) / 100,
                        serial: 1 + index, today: company.established, local: local))
            }
        case .smsGateway:
            break
        }
        return counts
    }
}
