import GRDB

/// The department systems OneWindow connects to, by their catalog ids (`Topics/catalog.yaml`),
/// plus the SMS gateway the hub sends its text messages through.
public enum DepartmentID: String, CaseIterable, Sendable, Hashable, CustomStringConvertible {
    case householdRegistry = "household-registry"
    case socialSecurity = "social-security"
    case tax
    case realEstate = "real-estate"
    case marketRegulation = "market-regulation"
    case foodSafety = "food-safety"
    case fireSafety = "fire-safety"
    case environment
    case urbanManagement = "urban-management"
    case smsGateway = "sms-gateway"

    public var description: String { rawValue }
}

/// A table a department system writes and a connector reads as a `table` source.
public struct SourceTable: Sendable, Hashable {
    /// The table name.
    public var name: String
    /// The catalog event type its rows become.
    public var eventType: String

    /// A source table and the event type of its rows.
    public init(name: String, eventType: String) {
        self.name = name
        self.eventType = eventType
    }
}

/// One simulated department system: what it is, the tables of its own SQLite database, whether it
/// answers approval requests and how long it takes.
///
/// Every source table follows the connector contract (`Connectors/README.md`): `id INTEGER PRIMARY
/// KEY AUTOINCREMENT`, `version` (1, +1 on each update) and `change_seq` (unique; `MAX + 1` inside the
/// write transaction on every insert and update), plus `modified_at`. Approving departments also
/// have `approval_inbox` and `approval_decisions` exactly as the contract says.
public struct DepartmentSystem: Sendable {
    /// The department id of the catalog.
    public let id: DepartmentID
    /// The department's name, e.g. `佛山市公安局禅城分局（户政）`.
    public let name: String
    /// The tables a connector publishes from, and as what event type.
    public let sourceTables: [SourceTable]
    /// The decision policy, for departments that answer approval requests.
    public let policy: DecisionPolicy?
    let migrations: [(String, String)]

    /// Whether the department answers approval requests (has `approval_inbox`).
    public var approves: Bool { policy != nil }

    /// The system of a department.
    public static func named(_ id: DepartmentID) -> DepartmentSystem {
        switch id {
        case .householdRegistry:
            DepartmentSystem(
                id: id, name: "佛山市公安局禅城分局（户政）",
                sourceTables: [
                    SourceTable(name: "birth_registrations", eventType: "household.birth.registered"),
                    SourceTable(name: "death_registrations", eventType: "household.death.registered"),
                    SourceTable(name: "migration_records", eventType: "household.move.registered"),
                    SourceTable(name: "household_member_changes", eventType: "household.member.changed"),
                ],
                policy: DecisionPolicy.householdRegistry, migrations: Schemas.householdRegistry)
        case .socialSecurity:
            DepartmentSystem(
                id: id, name: "佛山市禅城区人力资源和社会保障局（社保）",
                sourceTables: [
                    SourceTable(name: "enrolments", eventType: "socialsecurity.enrolment.registered"),
                    SourceTable(name: "contributions", eventType: "socialsecurity.contribution.paid"),
                    SourceTable(name: "pension_certifications", eventType: "socialsecurity.pension.certified"),
                ],
                policy: DecisionPolicy.socialSecurity, migrations: Schemas.socialSecurity)
        case .tax:
            DepartmentSystem(
                id: id, name: "国家税务总局佛山市禅城区税务局",
                sourceTables: [
                    SourceTable(name: "taxpayers", eventType: "tax.registration.completed"),
                    SourceTable(name: "tax_payments", eventType: "tax.payment.received"),
                    SourceTable(name: "clearance_certificates", eventType: "tax.clearance.issued"),
                ],
                policy: DecisionPolicy.tax, migrations: Schemas.tax)
        case .realEstate:
            DepartmentSystem(
                id: id, name: "佛山市禅城区不动产登记中心",
                sourceTables: [
                    SourceTable(name: "transfer_contracts", eventType: "realestate.contract.signed"),
                    SourceTable(name: "valuations", eventType: "realestate.valuation.completed"),
                    SourceTable(name: "registrations", eventType: "realestate.registration.completed"),
                ],
                policy: DecisionPolicy.realEstate, migrations: Schemas.realEstate)
        case .marketRegulation:
            DepartmentSystem(
                id: id, name: "佛山市禅城区市场监督管理局",
                sourceTables: [SourceTable(name: "enterprises", eventType: "market.business.registered")],
                policy: DecisionPolicy.marketRegulation, migrations: Schemas.marketRegulation)
        case .foodSafety:
            DepartmentSystem(
                id: id, name: "佛山市禅城区市场监督管理局（食品经营许可）",
                sourceTables: [SourceTable(name: "food_licences", eventType: "foodsafety.licence.issued")],
                policy: DecisionPolicy.foodSafety, migrations: Schemas.foodSafety)
        case .fireSafety:
            DepartmentSystem(
                id: id, name: "佛山市禅城区消防救援大队",
                sourceTables: [SourceTable(name: "fire_inspections", eventType: "firesafety.inspection.completed")],
                policy: DecisionPolicy.fireSafety, migrations: Schemas.fireSafety)
        case .environment:
            DepartmentSystem(
                id: id, name: "佛山市生态环境局禅城分局",
                sourceTables: [SourceTable(name: "eia_filings", eventType: "environment.assessment.filed")],
                policy: DecisionPolicy.environment, migrations: Schemas.environment)
        case .urbanManagement:
            DepartmentSystem(
                id: id, name: "佛山市禅城区城市管理和综合执法局",
                sourceTables: [SourceTable(name: "signboard_permits", eventType: "urban.signboard.approved")],
                policy: DecisionPolicy.urbanManagement, migrations: Schemas.urbanManagement)
        case .smsGateway:
            DepartmentSystem(
                id: id, name: "短信网关（模拟）", sourceTables: [], policy: nil, migrations: Schemas.smsGateway)
        }
    }

    /// Every department system.
    public static var all: [DepartmentSystem] { DepartmentID.allCases.map(named) }

    /// The migrations of the department's database, all in one migrator.
    public var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        for (identifier, sql) in migrations {
            migrator.registerMigration(identifier) { db in try db.execute(sql: sql) }
        }
        migrator.registerMigration("simulator-meta") { db in
            try db.execute(sql: "CREATE TABLE IF NOT EXISTS simulator_meta (key TEXT PRIMARY KEY, value TEXT)")
        }
        let tables = sourceTables.map(\.name)
        migrator.registerMigration("change-counter") { db in
            try db.execute(sql: Schemas.changeCounter(tables))
        }
        if let columns = DecisionFields.migration(id) {
            migrator.registerMigration("decision-fields") { db in try db.execute(sql: columns) }
        }
        return migrator
    }
}

/// The SQL of each department's database.
enum Schemas {
    /// `change_counter`: per source table, the last `change_seq` handed out. Writes take the next
    /// value from it (``nextChangeSeq(_:)``) and triggers move it on, so a value is never handed out
    /// twice — not even after the row holding the largest one is deleted, as `MAX(change_seq) + 1`
    /// would. Existing tables start from their largest value.
    static func changeCounter(_ tables: [String]) -> String {
        var sql = "CREATE TABLE change_counter (table_name TEXT PRIMARY KEY, value INTEGER NOT NULL);\n"
        for table in tables {
            let name = "'" + table.replacingOccurrences(of: "'", with: "''") + "'"
            let bump = "UPDATE change_counter SET value = MAX(value, NEW.change_seq) WHERE table_name = \(name);"
            sql += """
                INSERT INTO change_counter (table_name, value)
                    VALUES (\(name), (SELECT COALESCE(MAX(change_seq), 0) FROM \(quoted(table))));
                CREATE TRIGGER \(quoted(table + "_change_counter_insert")) AFTER INSERT ON \(quoted(table))
                    BEGIN \(bump) END;
                CREATE TRIGGER \(quoted(table + "_change_counter_update")) AFTER UPDATE OF change_seq ON \(quoted(table))
                    BEGIN \(bump) END;

                """
        }
        return sql
    }

    /// A source table of the connector contract, with the department's own columns.
    static func sourceTable(_ name: String, _ columns: String) -> String {
        """
        CREATE TABLE \(name) (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            version INTEGER NOT NULL DEFAULT 1,
            change_seq INTEGER NOT NULL,
            \(columns),
            modified_at TEXT
        );
        CREATE UNIQUE INDEX \(name)_change_seq ON \(name) (change_seq);
        """
    }

    /// `approval_inbox` and `approval_decisions` exactly as `Connectors/README.md` says.
    static let approvalTables = """
        CREATE TABLE approval_inbox (
            event_id TEXT PRIMARY KEY,
            application_id TEXT,
            item TEXT,
            service TEXT,
            due_by TEXT,
            payload TEXT,
            received_at TEXT,
            status TEXT
        );
        CREATE INDEX approval_inbox_status ON approval_inbox (status, received_at);
        CREATE TABLE approval_decisions (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            application_id TEXT,
            item TEXT,
            decision TEXT,
            reason TEXT,
            decided_at TEXT,
            decided_by TEXT,
            licence_number TEXT
        );
        CREATE INDEX approval_decisions_application ON approval_decisions (application_id, item);
        """

    // Column conventions, as the departments' own systems have them: dates `YYYYMMDD` text,
    // instants `YYYY-MM-DD HH:MM:SS` China time, sex GB/T 2261.1 ('1' male, '2' female), relation
    // to the head GB/T 4761, money integer fen (or decimal yuan text where only people read it),
    // areas decimal text ('96.50'), yes/no 'Y'/'N' or 1/0.

    static let householdRegistry: [(String, String)] = [
        (
            "v1-household-registry",
            """
            CREATE TABLE households (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                household_no TEXT NOT NULL UNIQUE,      -- 户号
                household_type TEXT,                    -- '1' 家庭户, '2' 集体户
                head_id_no TEXT,
                address TEXT,
                police_station TEXT,
                established_on TEXT                     -- YYYYMMDD
            );
            CREATE TABLE residents (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                id_no TEXT NOT NULL UNIQUE,             -- 公民身份号码
                name TEXT NOT NULL,
                gender TEXT,                            -- GB/T 2261.1
                ethnicity TEXT,                         -- GB 3304, '01' 汉族
                birth_date TEXT,                        -- YYYYMMDD
                household_no TEXT,
                relation_code TEXT,                     -- GB/T 4761
                mobile TEXT,
                address TEXT,
                police_station TEXT,
                status TEXT                             -- '1' 正常, '2' 死亡, '3' 迁出
            );
            CREATE INDEX residents_household ON residents (household_no);
            """ + "\n"
                + sourceTable(
                    "birth_registrations",
                    """
                    child_id_no TEXT, child_name TEXT, child_gender TEXT, birth_date TEXT, birth_place TEXT,
                    birth_cert_no TEXT, mother_id_no TEXT, mother_name TEXT, mother_mobile TEXT,
                    father_id_no TEXT, father_name TEXT, father_mobile TEXT, household_no TEXT, address TEXT,
                    police_station TEXT, registered_at TEXT
                    """) + "\n"
                + sourceTable(
                    "death_registrations",
                    """
                    id_no TEXT, name TEXT, death_date TEXT, death_place TEXT, death_cert_no TEXT, household_no TEXT,
                    police_station TEXT, registered_at TEXT
                    """) + "\n"
                + sourceTable(
                    "migration_records",
                    """
                    id_no TEXT, name TEXT, direction TEXT, reason_code TEXT, from_address TEXT, to_address TEXT,
                    household_no TEXT, permit_no TEXT, police_station TEXT, registered_at TEXT
                    """) + "\n"
                + sourceTable(
                    "household_member_changes",
                    """
                    household_no TEXT, change_type TEXT, id_no TEXT, name TEXT, relation_code TEXT,
                    police_station TEXT, changed_at TEXT
                    """) + "\n" + approvalTables
        )
    ]

    static let socialSecurity: [(String, String)] = [
        (
            "v1-social-security",
            """
            CREATE TABLE insured_persons (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                person_no TEXT NOT NULL UNIQUE,         -- 个人编号
                id_card_no TEXT NOT NULL,
                name TEXT NOT NULL,
                gender TEXT,
                birth_date TEXT,                        -- YYYYMMDD
                mobile TEXT,
                employer_credit_code TEXT,
                insured_status TEXT,                    -- '1' 参保缴费, '2' 暂停缴费, '3' 终止
                retired TEXT                            -- 'Y'/'N'
            );
            CREATE INDEX insured_persons_id_card ON insured_persons (id_card_no);
            """ + "\n"
                + sourceTable(
                    "enrolments",
                    """
                    person_no TEXT, id_card_no TEXT, name TEXT,
                    insurance_type TEXT,                    -- 险种: 110 170 210 310 390 410 510
                    employer_credit_code TEXT, begin_date TEXT, agency TEXT, handled_at TEXT
                    """) + "\n"
                + sourceTable(
                    "contributions",
                    """
                    person_no TEXT, id_card_no TEXT, insurance_type TEXT, fee_period TEXT,
                    contribution_base_fen INTEGER, personal_amount_fen INTEGER, unit_amount_fen INTEGER,
                    employer_credit_code TEXT, voucher_no TEXT, paid_at TEXT
                    """) + "\n"
                + sourceTable(
                    "pension_certifications",
                    """
                    person_no TEXT, id_card_no TEXT, name TEXT, cert_year TEXT,
                    cert_method TEXT,                       -- '1' 人脸识别 '2' 窗口 '3' 上门 '4' 数据比对
                    cert_place TEXT, cert_time TEXT
                    """) + "\n" + approvalTables
        )
    ]

    static let tax: [(String, String)] = [
        (
            "v1-tax",
            sourceTable(
                "taxpayers",
                """
                taxpayer_id TEXT,                           -- 纳税人识别号 (the credit code)
                taxpayer_name TEXT,
                taxpayer_type TEXT,                         -- '1' 一般纳税人 '2' 小规模纳税人 '3' 个体工商户
                legal_rep_name TEXT, legal_rep_id_no TEXT, legal_rep_mobile TEXT, industry_code TEXT,
                tax_authority TEXT, registered_at TEXT
                """) + "\n"
                + sourceTable(
                    "tax_payments",
                    """
                    taxpayer_id TEXT,                       -- a credit code or a resident ID number
                    taxpayer_name TEXT,
                    levy_item_code TEXT,                    -- 征收项目: 10101 10104 10106 10111 10113 10119
                    tax_period TEXT,                        -- YYYY-MM
                    amount_fen INTEGER, amount_yuan TEXT, voucher_no TEXT, paid_at TEXT
                    """) + "\n"
                + sourceTable(
                    "clearance_certificates",
                    """
                    taxpayer_id TEXT, certificate_no TEXT,
                    purpose_code TEXT,                      -- '01' 房产交易 '02' 经营 '03' 出境 '99' 其他
                    property_unit_no TEXT, amount_fen INTEGER, issued_at TEXT
                    """) + "\n"
                + "CREATE INDEX taxpayers_taxpayer_id ON taxpayers (taxpayer_id);\n" + approvalTables
        )
    ]

    static let realEstate: [(String, String)] = [
        (
            "v1-real-estate",
            """
            CREATE TABLE properties (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                unit_no TEXT NOT NULL UNIQUE,           -- 不动产单元号
                location TEXT,                          -- 坐落
                building_area TEXT,                     -- m², decimal text
                usage TEXT,                             -- 住宅, 商业
                owner_name TEXT, owner_cert_no TEXT, owner_mobile TEXT,
                certificate_no TEXT,
                mortgaged INTEGER,                      -- 1 when a mortgage is registered
                reference_unit_price TEXT               -- 评估基准单价, yuan per m², decimal text
            );
            """ + "\n"
                + sourceTable(
                    "transfer_contracts",
                    """
                    contract_no TEXT, unit_no TEXT, location TEXT, building_area TEXT, total_price_fen INTEGER,
                    seller_name TEXT, seller_cert_no TEXT, seller_mobile TEXT,
                    buyer_name TEXT, buyer_cert_no TEXT, buyer_mobile TEXT, signed_at TEXT
                    """) + "\n"
                + sourceTable(
                    "valuations",
                    """
                    unit_no TEXT, assessed_price_fen INTEGER, declared_price_fen INTEGER,
                    assessed_unit_price TEXT,               -- yuan per m², decimal text
                    method TEXT,                            -- '1' 批量评估 '2' 个案评估
                    completed_at TEXT
                    """) + "\n"
                + sourceTable(
                    "registrations",
                    """
                    unit_no TEXT, registration_type TEXT, certificate_no TEXT,
                    right_holder_name TEXT, right_holder_cert_no TEXT, right_holder_mobile TEXT,
                    obligor_name TEXT, obligor_cert_no TEXT, registered_at TEXT
                    """) + "\n" + approvalTables
        )
    ]

    static let marketRegulation: [(String, String)] = [
        (
            "v1-market-regulation",
            sourceTable(
                "enterprises",
                """
                credit_code TEXT, enterprise_name TEXT,
                enterprise_type TEXT,                       -- '1100' 有限责任公司 '4000' 个人独资 '4200' 合伙 '9600' 个体
                legal_rep_name TEXT, legal_rep_id_no TEXT, legal_rep_mobile TEXT, domicile TEXT, business_scope TEXT,
                registered_capital_fen INTEGER, established_date TEXT, registration_authority TEXT, approved_at TEXT
                """) + "\nCREATE INDEX enterprises_credit_code ON enterprises (credit_code);\n" + approvalTables
        )
    ]

    static let foodSafety: [(String, String)] = [
        (
            "v1-food-safety",
            sourceTable(
                "food_licences",
                """
                licence_no TEXT, credit_code TEXT, operator_name TEXT,
                business_form TEXT,                         -- '1' 食品销售 '2' 餐饮服务 '3' 单位食堂 '4' 网络餐饮
                premises_address TEXT, premises_area TEXT, valid_from TEXT, valid_to TEXT, issuing_authority TEXT,
                issued_at TEXT, application_id TEXT
                """) + "\n" + approvalTables
        )
    ]

    static let fireSafety: [(String, String)] = [
        (
            "v1-fire-safety",
            sourceTable(
                "fire_inspections",
                """
                inspection_no TEXT, credit_code TEXT, venue_name TEXT, venue_address TEXT,
                result TEXT,                                -- '1' 合格 '2' 不合格
                findings TEXT,                              -- JSON array of findings
                inspector_no TEXT, certificate_no TEXT, inspected_at TEXT, application_id TEXT
                """) + "\n" + approvalTables
        )
    ]

    static let environment: [(String, String)] = [
        (
            "v1-environment",
            sourceTable(
                "eia_filings",
                """
                filing_no TEXT, credit_code TEXT, project_name TEXT, project_address TEXT,
                fume_purifier TEXT,                         -- 'Y'/'N'
                filed_at TEXT, application_id TEXT
                """) + "\n" + approvalTables
        )
    ]

    static let urbanManagement: [(String, String)] = [
        (
            "v1-urban-management",
            sourceTable(
                "signboard_permits",
                """
                permit_no TEXT, credit_code TEXT, shop_name TEXT, address TEXT,
                width_m TEXT, height_m TEXT,                -- metres, decimal text
                approved_at TEXT, application_id TEXT
                """) + "\n" + approvalTables
        )
    ]

    static let smsGateway: [(String, String)] = [
        (
            "v1-sms-gateway",
            """
            CREATE TABLE sms_outbox (
                event_id TEXT PRIMARY KEY,
                mobile TEXT,
                template TEXT,
                text TEXT,
                application_id TEXT,
                queued_at TEXT,
                resident_id TEXT,
                parameters TEXT,                        -- the event's parameters, JSON
                sent_at TEXT                            -- set by the gateway when it sends
            );
            CREATE INDEX sms_outbox_unsent ON sms_outbox (sent_at);
            """
        )
    ]
}
