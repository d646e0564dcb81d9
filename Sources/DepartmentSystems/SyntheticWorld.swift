import CivilTime
import EventSchemas
import Foundation

/// A small, fast, seedable random number generator (SplitMix64): the same seed gives the same
/// residents, companies and rows on every machine.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// A generator starting from `seed`.
    public init(seed: UInt64) {
        state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in `0..<bound`.
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }

    /// True with probability `p`.
    mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) / Double(1 << 53) < p }

    /// A random element.
    mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }

    /// `count` random decimal digits.
    mutating func digits(_ count: Int) -> String {
        var text = ""
        text.reserveCapacity(count)
        for _ in 0..<count { text.append(Character(Unicode.Scalar(UInt8(48 + below(10))))) }
        return text
    }
}

/// A resident of the simulated Chancheng: the same people appear in every department's system,
/// under their resident ID number, as in the real shared data view.
public struct Person: Sendable, Hashable {
    /// The 18-character resident ID number (GB 11643-1999).
    public var residentId: String
    /// The name as on the ID card.
    public var name: String
    /// GB/T 2261.1 sex code: `1` male, `2` female.
    public var genderCode: String
    /// The birth date.
    public var birthDate: CivilDate
    /// An 11-digit mobile number.
    public var mobile: String
    /// The 12-digit household number (户号).
    public var householdNumber: String
    /// GB/T 4761 relation to the head of household: `02` head, `10`/`11`/`12` spouse, `20`… son,
    /// `30`… daughter, `41`/`42` grandchild, `51`/`52` parent, `99` other.
    public var relationCode: String
    /// The registered address.
    public var address: String
    /// The police station keeping the household register.
    public var policeStation: String
}

/// A company or an individual business (个体工商户) registered in Chancheng.
public struct Company: Sendable, Hashable {
    /// The 18-character unified social credit code (GB 32100-2015).
    public var creditCode: String
    /// The registered name.
    public var name: String
    /// Market regulation's entity type code: `1100` limited company, `4000` sole proprietorship,
    /// `4200` partnership, `9600` individual business.
    public var entityTypeCode: String
    /// The legal representative (or operator of an individual business).
    public var legalRepresentative: Person
    /// The registered address (住所).
    public var address: String
    /// Whether it is a restaurant (and holds the five restaurant licences).
    public var isRestaurant: Bool
    /// The business scope.
    public var scope: String
    /// Registered capital in fen.
    public var capitalFen: Int
    /// The date of establishment.
    public var established: CivilDate
}

/// A real estate unit (不动产单元) in Chancheng.
public struct Property: Sendable, Hashable {
    /// The 28-character real estate unit number (不动产单元号).
    public var unitNumber: String
    /// The location (坐落).
    public var address: String
    /// Floor area in square metres.
    public var areaSquareMetres: Double
    /// The owner.
    public var owner: Person
    /// The title certificate number, e.g. `粤(2019)佛禅不动产权第0012345号`.
    public var certificateNumber: String
    /// Whether a mortgage is registered on it.
    public var mortgaged: Bool
    /// The assessed market price per square metre, in fen.
    public var unitPriceFen: Int
}

/// Names, places and identifiers that look like Chancheng's: the vocabulary of every simulated row.
enum Vocabulary {
    static let surnames = Array("陈李黄梁张林刘何罗吴郑谢冯邓麦潘钟周叶杨区霍卢苏关蔡曾郭彭胡谭莫伍简招")
    static let maleGiven = Array("伟强明华俊杰志浩文斌国荣家辉子轩宇航嘉豪建军永健振锦晖耀")
    static let femaleGiven = Array("丽敏慧婷美玲嘉欣淑仪秀英雅琪诗颖晓彤雨桐凤翠桂芳宝怡")
    static let roads = [
        "祖庙路", "人民路", "升平路", "建新路", "福宁路", "汾江中路", "季华五路", "季华四路", "岭南大道北", "文华北路",
        "绿景路", "魁奇一路", "同济西路", "朝安南路", "普澜二路", "卫国路", "石湾公园路", "和平路", "江湾一路", "东平路",
        "张槎一路", "南庄大道", "禅港路", "佛山大道中", "轻工三路",
    ]
    static let estates = [
        "东建世纪广场", "保利花园", "中海锦城", "岭南天地", "万科金色家园", "星际华园", "君御花园", "绿景花园",
        "南海明珠", "金域中央", "怡翠玖玺", "富华大厦", "佛山新城花园",
    ]
    static let policeStations = [
        "佛山市公安局禅城分局祖庙派出所", "佛山市公安局禅城分局石湾派出所", "佛山市公安局禅城分局张槎派出所",
        "佛山市公安局禅城分局南庄派出所", "佛山市公安局禅城分局澜石派出所",
    ]
    static let hospitals = [
        "佛山市第一人民医院", "佛山市妇幼保健院", "佛山市中医院", "佛山市禅城区中心医院", "佛山复星禅诚医院",
    ]
    static let otherPlaces = [
        "长沙市芙蓉区五一大道98号", "广州市天河区中山大道西55号", "湛江市霞山区人民大道南38号",
        "梅州市梅江区江南路12号", "南宁市青秀区民族大道100号", "佛山市南海区桂城街道南海大道北8号",
        "佛山市顺德区大良街道德民路5号",
    ]
    static let otherRegions = ["430102", "440106", "440802", "441402", "450103", "440605", "440606"]
    static let restaurantBrands = [
        "粤味轩", "陈记", "老西关", "禅城人家", "南风古灶", "佛味居", "黄飞鸿", "石湾鱼头", "九记", "粥公馆",
        "岭南小厨", "祖庙私房菜", "鸿运茶餐厅", "好再来", "顺德均安",
    ]
    static let otherBrands = ["华盈", "恒通", "建丰", "新陶", "金辉", "盛达", "利华", "永安", "联科", "宏图"]
    static let otherTrades = [
        ("陶瓷贸易有限公司", "陶瓷制品批发"), ("五金制品有限公司", "五金产品制造"), ("科技有限公司", "软件开发"),
        ("物业管理有限公司", "物业管理"), ("服装商行", "服装零售"),
    ]
    static let mobilePrefixes = [
        "134", "135", "136", "137", "138", "139", "150", "151", "152", "158", "159", "182", "187", "188", "130",
        "131", "132", "155", "156", "185", "186", "133", "153", "180", "189", "199",
    ]

    static func name(_ rng: inout SeededGenerator, male: Bool) -> String {
        let given = male ? maleGiven : femaleGiven
        var text = String(rng.pick(surnames)) + String(rng.pick(given))
        if rng.chance(0.7) { text.append(rng.pick(given)) }
        return text
    }

    static func mobile(_ rng: inout SeededGenerator) -> String { rng.pick(mobilePrefixes) + rng.digits(8) }

    static func address(_ rng: inout SeededGenerator) -> String {
        let road = rng.pick(roads)
        let number = 1 + rng.below(180)
        if rng.chance(0.75) {
            let room = "\(1 + rng.below(12))座\(2 + rng.below(30))0\(1 + rng.below(6))"
            return "佛山市禅城区\(road)\(number)号\(rng.pick(estates))\(room)"
        }
        return "佛山市禅城区\(road)\(number)号"
    }

    static func shopAddress(_ rng: inout SeededGenerator) -> String {
        "佛山市禅城区\(rng.pick(roads))\(1 + rng.below(220))号首层\(rng.chance(0.5) ? "之\(1 + rng.below(9))" : "")"
    }

    /// A valid resident ID number for a birth date (a fresh sequence number; sex in its parity).
    static func residentId(
        region: String = "440604", birth: CivilDate, male: Bool, _ rng: inout SeededGenerator
    ) -> String {
        // ResidentIDNumber.make does the same through String(format:), which is slow on Linux; the
        // generator makes tens of thousands a second.
        let first17 = region + birth.compact + pad(rng.below(500) * 2 + (male ? 1 : 0), 3)
        return first17 + String(ResidentIDNumber.checkCharacter(for: first17)!)
    }

    /// A valid unified social credit code: `91` (company) or `92` (individual business), Chancheng's
    /// region code, a new-style organisation code `MA…` with its GB 11714 check character, then the
    /// GB 32100 check character.
    static func creditCode(individual: Bool, _ rng: inout SeededGenerator) -> String {
        let alphabet = Array("0123456789ABCDEFGHJKLMNPQRTUWXY")
        var organisation = "MA"
        for _ in 0..<6 { organisation.append(rng.pick(alphabet)) }
        organisation.append(organisationCheck(organisation))
        return UnifiedSocialCreditCode.make(first17: (individual ? "92" : "91") + "440604" + organisation)!
    }

    /// The check character of an 8-character organisation code (GB 11714-1997).
    static func organisationCheck(_ code: String) -> Character {
        let weights = [3, 7, 9, 10, 5, 8, 4, 2]
        let sum = zip(code, weights).reduce(0) { total, pair in
            let value = pair.0.wholeNumberValue ?? Int(pair.0.asciiValue! - 55)  // A = 10 … Z = 35
            return total + value * pair.1
        }
        let check = 11 - sum % 11
        return check == 10 ? "X" : check == 11 ? "0" : Character(String(check))
    }

    /// A 28-character real estate unit number: region, cadastral zone, parcel, building and unit.
    static func unitNumber(_ rng: inout SeededGenerator) -> String {
        "440604" + "00\(1 + rng.below(9))00\(1 + rng.below(9))" + "GB" + rng.digits(5) + "F" + rng.digits(8)
    }
}

/// The simulated Chancheng: households of residents, companies and properties, the same for one
/// seed in every department's database.
public struct SyntheticWorld: Sendable {
    /// The residents, household by household.
    public let people: [Person]
    /// Companies and individual businesses.
    public let companies: [Company]
    /// Residential properties.
    public let properties: [Property]

    /// A world of about `residents` residents (whole households), `companies` companies and
    /// `properties` properties, as of `today`.
    public init(
        seed: UInt64 = 440_604, residents: Int = 300, companies: Int = 60, properties: Int = 150,
        today: CivilDate = CivilDate(year: 2025, month: 1, day: 1)!
    ) {
        var rng = SeededGenerator(seed: seed)
        var people: [Person] = []
        var used = Set<String>()
        var householdSerial = 0
        func born(yearsAgo: ClosedRange<Int>) -> CivilDate {
            let year = today.year - Int.random(in: yearsAgo, using: &rng)
            let month = 1 + rng.below(12)
            return CivilDate(
                year: year, month: month, day: 1 + rng.below(CivilDate.daysIn(year: year, month: month)))!
        }
        func person(
            male: Bool, birth: CivilDate, relation: String, household: String, address: String,
            station: String, surname: Character? = nil
        ) -> Person {
            var id = Vocabulary.residentId(birth: birth, male: male, &rng)
            while used.contains(id) { id = Vocabulary.residentId(birth: birth, male: male, &rng) }
            used.insert(id)
            var name = Vocabulary.name(&rng, male: male)
            if let surname { name = String(surname) + name.dropFirst() }
            return Person(
                residentId: id, name: name, genderCode: male ? "1" : "2", birthDate: birth,
                mobile: Vocabulary.mobile(&rng), householdNumber: household, relationCode: relation, address: address,
                policeStation: station)
        }
        while people.count < residents {
            householdSerial += 1
            let household = "440604" + pad(10_000 + householdSerial * 7 % 90_000, 6)
            let address = Vocabulary.address(&rng)
            let station = rng.pick(Vocabulary.policeStations)
            let headMale = rng.chance(0.7)
            let head = person(
                male: headMale, birth: born(yearsAgo: 28...75), relation: "02", household: household,
                address: address, station: station)
            people.append(head)
            let headAge = today.year - head.birthDate.year
            if rng.chance(0.75) {
                people.append(
                    person(
                        male: !headMale, birth: born(yearsAgo: max(24, headAge - 5)...(headAge + 3)),
                        relation: headMale ? "12" : "11", household: household, address: address,
                        station: station))
            }
            if headAge < 60 {
                for child in 0..<rng.below(3) {
                    let male = rng.chance(0.52)
                    let code = male ? (child == 0 ? "21" : "22") : (child == 0 ? "31" : "32")
                    people.append(
                        person(
                            male: male, birth: born(yearsAgo: 0...max(0, min(25, headAge - 24))),
                            relation: code, household: household, address: address, station: station,
                            surname: headMale ? head.name.first : nil))
                }
            }
            if headAge < 50, rng.chance(0.2) {
                people.append(
                    person(
                        male: rng.chance(0.5), birth: born(yearsAgo: (headAge + 22)...(headAge + 35)),
                        relation: rng.chance(0.5) ? "51" : "52", household: household, address: address,
                        station: station))
            }
        }
        self.people = people
        let adults = people.filter { today.year - $0.birthDate.year >= 22 }

        var firms: [Company] = []
        for index in 0..<companies {
            let restaurant = index % 2 == 0
            let individual = restaurant ? rng.chance(0.7) : rng.chance(0.2)
            let representative = adults[rng.below(adults.count)]
            let brand = restaurant ? rng.pick(Vocabulary.restaurantBrands) : rng.pick(Vocabulary.otherBrands)
            let trade = rng.pick(Vocabulary.otherTrades)
            let name: String
            let type: String
            if restaurant {
                name = individual ? "佛山市禅城区\(brand)餐饮店" : "佛山市\(brand)餐饮管理有限公司"
                type = individual ? "9600" : "1100"
            } else {
                name =
                    individual
                    ? "佛山市禅城区\(brand)\(trade.0.replacingOccurrences(of: "有限公司", with: "经营部"))"
                    : "佛山市\(brand)\(trade.0)"
                type = individual ? "9600" : rng.pick(["1100", "1100", "4000", "4200"])
            }
            firms.append(
                Company(
                    creditCode: Vocabulary.creditCode(individual: individual, &rng), name: name, entityTypeCode: type,
                    legalRepresentative: representative, address: Vocabulary.shopAddress(&rng),
                    isRestaurant: restaurant,
                    scope: restaurant ? "餐饮服务；食品销售" : trade.1,
                    capitalFen: (individual ? 5 + rng.below(45) : 50 + rng.below(950)) * 1_000_000,
                    established: born(yearsAgo: 1...15)))
        }
        self.companies = firms

        var units: [Property] = []
        var unitNumbers = Set<String>()
        for index in 0..<properties {
            var unit = Vocabulary.unitNumber(&rng)
            while unitNumbers.contains(unit) { unit = Vocabulary.unitNumber(&rng) }
            unitNumbers.insert(unit)
            let owner = adults[rng.below(adults.count)]
            let year = today.year - 1 - rng.below(15)
            units.append(
                Property(
                    unitNumber: unit, address: Vocabulary.address(&rng),
                    areaSquareMetres: Double(5_000 + rng.below(12_000)) / 100, owner: owner,
                    certificateNumber: "粤(\(year))佛禅不动产权第\(pad(index * 37 + 1_000 + rng.below(30), 7))号",
                    mortgaged: rng.chance(0.25), unitPriceFen: (12_000 + rng.below(14_000)) * 100))
        }
        self.properties = units
    }
}
