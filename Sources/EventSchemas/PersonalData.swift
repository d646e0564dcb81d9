import EventModel
import Foundation

/// Masks the personal data in event bodies and log lines: resident ID numbers
/// (`440602********1234`, region and last four kept), people's names (`王**`, family name kept)
/// and mobile numbers (`138****5678`). What holds the `personal-data` grant
/// (AccessControl's `Grant.personalData`) or asks with `--show-personal-data` sees them unmasked;
/// logs and everything else see them masked.
///
/// What counts as personal, in a JSON body:
/// - **by field name**: `residentId`, `idNumber`, `idCardNumber` and any name ending in
///   `ResidentId` are ID numbers; `mobile`, `phone`, `mobileNumber`, `phoneNumber`, `telephone`
///   and any name ending in `Mobile` or `Phone` are phone numbers — masked whatever they hold
///   (a malformed number in a dead letter is still someone's);
/// - **by value**: any other string that is a resident ID number (18 characters, the check
///   character right) or a mainland mobile number (11 digits `1[3-9]…`) — `taxpayerId`,
///   `subject`, an applicant key;
/// - **names**: `name` and `fullName` in an object that also holds a person's ID number or mobile
///   number (the applicant, the child, the seller; not `business.name` or a material's `name`),
///   `applicantName`, and `<x>Name` beside an `<x>Id` that holds a resident ID number
///   (`taxpayerName` of a taxpayer who is a person, not of a company).
///
/// Not masked: unified social credit codes. They identify organisations (a company, a sole
/// trader's business) and are public in the national enterprise credit register; they are the
/// key by which a business's events are looked up. Dates, amounts and addresses are not masked
/// either: they identify no one without the ID or the name.
///
/// In free text (log lines, a body that is not JSON) only what the value shows can be found: ID
/// numbers and mobile numbers by their form, and names only as the value of a quoted `"name"`
/// member (a JSON text cut short).
public enum PersonalData {
    static let identifierKeys: Set<String> = ["residentid", "idnumber", "idcardnumber"]
    static let phoneKeys: Set<String> = ["mobile", "phone", "mobilenumber", "phonenumber", "telephone"]
    static let nameKeys: Set<String> = ["name", "fullname"]

    /// The body with its personal data masked: a JSON body member by member (serialized again,
    /// keys sorted), anything else as text (``maskText(_:)``), so a body that is not JSON is not
    /// shown unmasked either.
    public static func maskBody(_ data: Data) -> Data {
        guard let value = try? JSONValue.parse(data) else {
            return Data(maskText(String(decoding: data, as: UTF8.self)).utf8)
        }
        return mask(value).serialized()
    }

    /// A JSON value with its personal data masked (see the type's documentation for what counts).
    public static func mask(_ value: JSONValue) -> JSONValue {
        switch value {
        case .string(let text):
            return .string(maskValue(text))
        case .array(let elements):
            return .array(elements.map(mask))
        case .object(let members):
            let isPerson = members.contains { key, value in
                guard let text = value.stringValue else { return false }
                let lower = lowercased(key)
                return isIdentifierKey(lower) || isPhoneKey(lower) || isResidentID(text)
            }
            var masked = JSONObject(minimumCapacity: members.count)
            for (key, member) in members {
                masked[key] = maskMember(key, member, isPerson: isPerson, siblings: members)
            }
            return .object(masked)
        default:
            return value
        }
    }

    private static func maskMember(_ key: String, _ value: JSONValue, isPerson: Bool, siblings: JSONObject)
        -> JSONValue
    {
        guard case .string(let text) = value else { return mask(value) }
        let lower = lowercased(key)
        if isIdentifierKey(lower) { return .string(Masking.identifier(text)) }
        if isPhoneKey(lower) { return .string(Masking.phone(text)) }
        if nameKeys.contains(lower), isPerson { return .string(Masking.name(text)) }
        if lower == "applicantname" { return .string(Masking.name(text)) }
        if key.hasSuffix("Name"), key.count > 4 {
            let owner = key.dropLast(4)
            if let id = siblings[owner + "Id"]?.stringValue, isResidentID(id) { return .string(Masking.name(text)) }
        }
        return .string(maskValue(text))
    }

    /// A named value outside a JSON body (a log line's metadata): masked by its name when the name
    /// says ID number, mobile number or applicant's name, else as free text (``maskText(_:)``).
    public static func maskField(_ key: String, _ text: String) -> String {
        let lower = key.lowercased()
        if isIdentifierKey(lower) { return Masking.identifier(text) }
        if isPhoneKey(lower) { return Masking.phone(text) }
        if lower == "applicantname" { return Masking.name(text) }
        return maskText(text)
    }

    /// `key.lowercased()`, without Unicode case mapping when the key is ASCII and has no
    /// upper-case letter (most member names: `residentId` has one, `name` none).
    static func lowercased(_ key: String) -> String {
        key.utf8.contains(where: { $0 >= 0x80 || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) })
            ? key.lowercased() : key
    }

    static func isIdentifierKey(_ lower: String) -> Bool { identifierKeys.contains(lower) || lower.hasSuffix("residentid") }

    static func isPhoneKey(_ lower: String) -> Bool {
        phoneKeys.contains(lower) || lower.hasSuffix("mobile") || lower.hasSuffix("phone")
    }

    /// A whole string that is an ID number or a mobile number, masked; anything else as it is.
    static func maskValue(_ text: String) -> String {
        if isResidentID(text) { return Masking.identifier(text) }
        if isMobile(text) { return Masking.phone(text) }
        return text
    }

    /// 17 digits and the right ISO 7064 MOD 11-2 check character (birth date not judged: a
    /// number with an odd date is masked all the same).
    static func isResidentID(_ text: String) -> Bool {
        // On the UTF-8 bytes: every string of a body masked is asked this.
        guard text.utf8.count == 18 else { return false }
        var text = text
        return text.withUTF8 { bytes in
            var sum = 0
            for index in 0..<17 {
                let digit = bytes[index] &- UInt8(ascii: "0")
                guard digit < 10 else { return false }
                sum += Int(digit) * ResidentIDNumber.weights[index]
            }
            return ResidentIDNumber.checkBytes[sum % 11] == bytes[17]
        }
    }

    static func isMobile(_ text: String) -> Bool { MobileNumber.problem(in: text) == nil }

    /// Free text with every ID number and mobile number masked where it stands alone (not inside
    /// a longer run of digits or letters), and the value of each quoted `"name"`, `"fullName"` or
    /// `"applicantName"` member masked.
    public static func maskText(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 &- UInt8(ascii: "0") < 10 }) || text.contains("ame\"") else { return text }
        var result = text.replacing(#/(^|[^0-9A-Za-z])([0-9]{17}[0-9X]|1[3-9][0-9]{9})(?=[^0-9A-Za-z]|$)/#) { match in
            match.output.1 + maskValue(String(match.output.2))
        }
        result = result.replacing(#/("(?:name|fullName|applicantName)"\s*:\s*")([^"\\]*)/#) { match in
            match.output.1 + Masking.name(String(match.output.2))
        }
        return result
    }
}
