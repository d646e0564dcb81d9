import CivilTime
import Foundation

/// The 18-character citizen identity number of GB 11643-1999 (公民身份号码): a 6-digit region
/// code, an 8-digit birth date, a 3-digit sequence (odd for men, even for women) and a check
/// character computed with ISO 7064 MOD 11-2 (`0`–`9` or an upper-case `X`).
public enum ResidentIDNumber {
    static let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    static let checkCharacters = Array("10X98765432")

    /// The earliest birth date a number may carry: 1900-01-01 (the register holds no one born
    /// earlier, and a year 18xx is a typo).
    public static let earliestBirthDate = CivilDate(year: 1900, month: 1, day: 1)!

    /// What is wrong with `text` as a resident ID number, or `nil` when it is valid.
    /// - Parameter today: today's date in China time; a birth date after it is refused. Default:
    ///   the system clock's date in China time (UTC+8).
    public static func problem(in text: String, today: CivilDate? = nil) -> String? {
        let today = today ?? CivilDate.china(Date())
        if isValidASCII(text, today: today) { return nil }
        // Worked out on the UTF-8 bytes, without an array of characters (issue 12's floods: a
        // refusal must cost no more than an acceptance). Text that is not plain ASCII is counted
        // and read in characters, so the message says what it always said.
        var utf8 = text
        return utf8.withUTF8 { bytes -> String? in
            guard IdentifierText.isPlainASCII(bytes) else {
                let count = text.count
                guard count == 18 else { return "should be 18 characters, found \(count)" }
                // Some character is not ASCII (or is a CR LF): within the first 17, or the last.
                return text.prefix(17).allSatisfy({ $0.isASCII && $0.isNumber })
                    ? "the last character should be a digit or X" : "the first 17 characters should be digits"
            }
            guard bytes.count == 18 else { return "should be 18 characters, found \(bytes.count)" }
            guard bytes[0..<17].allSatisfy({ $0 &- UInt8(ascii: "0") < 10 }) else {
                return "the first 17 characters should be digits"
            }
            let last = bytes[17]
            if last == UInt8(ascii: "x") { return "the check character X should be upper-case" }
            guard last &- UInt8(ascii: "0") < 10 || last == UInt8(ascii: "X") else {
                return "the last character should be a digit or X"
            }
            guard (UInt8(ascii: "1")...UInt8(ascii: "8")).contains(bytes[0]) else {
                return "region code \(IdentifierText.text(bytes, 0..<6)) does not exist (it starts with 1 to 8)"
            }
            let birth = IdentifierText.text(bytes, 6..<14)
            guard let born = CivilDate(
                year: Formats.digits(bytes, 6, 4)!, month: Formats.digits(bytes, 10, 2)!, day: Formats.digits(bytes, 12, 2)!)
            else {
                return "birth date \(birth) is not a date"
            }
            guard born >= earliestBirthDate else {
                return "birth date \(birth) is before 1900-01-01"
            }
            guard born <= today else {
                return "birth date \(birth) is in the future (today is \(today) in China time)"
            }
            var sum = 0
            for index in 0..<17 { sum += Int(bytes[index] &- UInt8(ascii: "0")) * weights[index] }
            let expected = checkBytes[sum % 11]
            guard expected == last else {
                return "check character should be '\(IdentifierText.text(expected))', found '\(IdentifierText.text(last))'"
            }
            return nil
        }
    }

    /// The check on the UTF-8 bytes, without building characters: `true` only for a valid number
    /// (``problem(in:)`` then says nothing more); `false` lets ``problem(in:)`` find the reason.
    static func isValidASCII(_ text: String, today: CivilDate) -> Bool {
        var text = text
        return text.withUTF8 { bytes in
            guard bytes.count == 18, (UInt8(ascii: "1")...UInt8(ascii: "8")).contains(bytes[0]) else { return false }
            var sum = 0
            for index in 0..<17 {
                let digit = bytes[index] &- UInt8(ascii: "0")
                guard digit < 10 else { return false }
                sum += Int(digit) * weights[index]
            }
            guard let year = Formats.digits(bytes, 6, 4), year >= 1900, let month = Formats.digits(bytes, 10, 2),
                let day = Formats.digits(bytes, 12, 2), CivilDate.isValid(year: year, month: month, day: day),
                (year, month, day) <= (today.year, today.month, today.day)
            else { return false }
            return checkBytes[sum % 11] == bytes[17]
        }
    }

    static let checkBytes = Array("10X98765432".utf8)

    /// The check character for the first 17 digits, or `nil` when they are not 17 digits.
    public static func checkCharacter(for first17: String) -> Character? {
        let digits = first17.compactMap { $0.isASCII ? $0.wholeNumberValue : nil }
        guard digits.count == 17, first17.count == 17 else { return nil }
        let sum = zip(digits, weights).reduce(0) { $0 + $1.0 * $1.1 }
        return checkCharacters[sum % 11]
    }

    /// A valid number for a region, birth date and sequence (0…999; odd for men, even for women).
    public static func make(region: String, birthDate: (year: Int, month: Int, day: Int), sequence: Int) -> String {
        let first17 =
            region + String(format: "%04d%02d%02d", birthDate.year, birthDate.month, birthDate.day)
            + String(format: "%03d", sequence % 1000)
        return first17 + String(checkCharacter(for: first17)!)
    }
}

/// The 18-character unified social credit code of GB 32100-2015 (统一社会信用代码): registration
/// authority, entity type, 6-digit region code, 9-character organisation code, and a MOD 31 check
/// character, over the alphabet `0-9 A-H J-N P-R T U W-Y` (no I, O, S, V, Z).
public enum UnifiedSocialCreditCode {
    static let alphabet = Array("0123456789ABCDEFGHJKLMNPQRTUWXY")
    static let weights = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
    static let values: [Character: Int] = Dictionary(uniqueKeysWithValues: alphabet.enumerated().map { ($1, $0) })

    /// What is wrong with `text` as a credit code, or `nil` when it is valid.
    public static func problem(in text: String) -> String? {
        if isValidASCII(text) { return nil }
        // On the UTF-8 bytes, as ``ResidentIDNumber/problem(in:today:)``; text that is not plain
        // ASCII is counted and read in characters, so the message says what it always said.
        let allowed = "is not allowed (use 0-9 and upper-case letters except I, O, S, V, Z)"
        var utf8 = text
        return utf8.withUTF8 { bytes -> String? in
            guard IdentifierText.isPlainASCII(bytes) else {
                let count = text.count
                guard count == 18 else { return "should be 18 characters, found \(count)" }
                // Some character is not ASCII (or is a CR LF), and so not in the alphabet.
                for (index, character) in text.enumerated() where values[character] == nil {
                    return "character \(index + 1) '\(character)' \(allowed)"
                }
                return nil
            }
            guard bytes.count == 18 else { return "should be 18 characters, found \(bytes.count)" }
            var sum = 0
            for index in 0..<18 {
                let byte = bytes[index]
                guard byteValues[Int(byte)] >= 0 else {
                    return "character \(index + 1) '\(IdentifierText.text(byte))' \(allowed)"
                }
                if index < 17 { sum += Int(byteValues[Int(byte)]) * weights[index] }
            }
            guard bytes[2..<8].allSatisfy({ $0 &- UInt8(ascii: "0") < 10 }) else {
                return "characters 3 to 8 (the region code) should be digits"
            }
            let expected = alphabetBytes[(31 - sum % 31) % 31]
            guard expected == bytes[17] else {
                return "check character should be '\(IdentifierText.text(expected))', found '\(IdentifierText.text(bytes[17]))'"
            }
            return nil
        }
    }

    static let alphabetBytes = Array("0123456789ABCDEFGHJKLMNPQRTUWXY".utf8)

    /// Each ASCII byte's value in the alphabet, -1 for a byte outside it.
    static let byteValues: [Int8] = {
        var table = [Int8](repeating: -1, count: 128)
        for (index, character) in alphabet.enumerated() { table[Int(character.asciiValue!)] = Int8(index) }
        return table
    }()

    /// The check on the UTF-8 bytes, without building characters: `true` only for a valid code.
    static func isValidASCII(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { bytes in
            guard bytes.count == 18 else { return false }
            var sum = 0
            for index in 0..<18 {
                let byte = bytes[index]
                guard byte < 128, byteValues[Int(byte)] >= 0 else { return false }
                if index >= 2, index < 8, byte &- UInt8(ascii: "0") >= 10 { return false }
                if index < 17 { sum += Int(byteValues[Int(byte)]) * weights[index] }
            }
            return Int(byteValues[Int(bytes[17])]) == (31 - sum % 31) % 31
        }
    }

    /// The check character for the first 17 characters, or `nil` when they are not from the alphabet.
    public static func checkCharacter(for first17: String) -> Character? {
        let numbers = first17.compactMap { values[$0] }
        guard numbers.count == 17, first17.count == 17 else { return nil }
        let sum = zip(numbers, weights).reduce(0) { $0 + $1.0 * $1.1 }
        return alphabet[(31 - sum % 31) % 31]
    }

    /// A valid code from its first 17 characters.
    public static func make(first17: String) -> String? {
        checkCharacter(for: first17).map { first17 + String($0) }
    }
}

/// A mainland China mobile number as the schemas accept it: 11 digits, `1[3-9]` then 9 digits,
/// without a `+86` prefix (strip it before publishing).
public enum MobileNumber {
    /// What is wrong with `text` as a mobile number, or `nil` when it is valid.
    public static func problem(in text: String) -> String? {
        // Eleven characters that are ASCII digits are exactly eleven bytes that are: no array of
        // characters needed.
        guard text.utf8.count == 11, text.utf8.allSatisfy({ $0 &- UInt8(ascii: "0") < 10 }) else {
            return "should be 11 digits (no +86 prefix, no spaces)"
        }
        guard text.utf8.first == UInt8(ascii: "1"), text.utf8.dropFirst().first! >= UInt8(ascii: "3") else {
            return "should start with 13 to 19"
        }
        return nil
    }
}

/// The identifiers' refusal messages read from UTF-8 bytes.
enum IdentifierText {
    /// ASCII without a CR LF: each character is then one byte (a CR LF is one character).
    static func isPlainASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var previous: UInt8 = 0
        for byte in bytes {
            if byte >= 0x80 || (byte == 0x0A && previous == 0x0D) { return false }
            previous = byte
        }
        return true
    }

    /// The text of some ASCII bytes.
    static func text(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    /// The text of one ASCII byte.
    static func text(_ byte: UInt8) -> String { String(Character(Unicode.Scalar(byte))) }
}
