import CivilTime
@testable import EventSchemas
import Foundation
import Testing

/// The identifiers' refusal messages are worked out on the UTF-8 bytes (issue 12's floods) and
/// must say word for word what they said when they were worked out on arrays of characters: the
/// earlier code is kept here as the reference, and both read the same inputs, valid and spoiled in
/// every position with ASCII, full-width digits, Chinese characters, combining marks and CR LF.
@Suite("Identifier refusal messages, on bytes as on characters")
struct IdentifierMessageTests {
    /// The messages as `ResidentIDNumber.problem(in:today:)` built them from `Array(text)`.
    static func residentIDReference(_ text: String, today: CivilDate) -> String? {
        let characters = Array(text)
        guard characters.count == 18 else { return "should be 18 characters, found \(characters.count)" }
        guard characters.prefix(17).allSatisfy({ $0.isASCII && $0.isNumber }) else {
            return "the first 17 characters should be digits"
        }
        if characters[17] == "x" { return "the check character X should be upper-case" }
        guard characters[17].isASCII, characters[17].isNumber || characters[17] == "X" else {
            return "the last character should be a digit or X"
        }
        guard let first = characters.first, ("1"..."8").contains(first) else {
            return "region code \(String(characters.prefix(6))) does not exist (it starts with 1 to 8)"
        }
        let birth = String(characters[6..<14])
        guard let born = CivilDate(year: Int(birth.prefix(4))!, month: Int(birth.dropFirst(4).prefix(2))!, day: Int(birth.suffix(2))!)
        else { return "birth date \(birth) is not a date" }
        guard born >= ResidentIDNumber.earliestBirthDate else { return "birth date \(birth) is before 1900-01-01" }
        guard born <= today else { return "birth date \(birth) is in the future (today is \(today) in China time)" }
        let expected = ResidentIDNumber.checkCharacter(for: String(characters.prefix(17)))!
        guard expected == characters[17] else { return "check character should be '\(expected)', found '\(characters[17])'" }
        return nil
    }

    /// The messages as `UnifiedSocialCreditCode.problem(in:)` built them from `Array(text)`.
    static func creditCodeReference(_ text: String) -> String? {
        let characters = Array(text)
        guard characters.count == 18 else { return "should be 18 characters, found \(characters.count)" }
        for (index, character) in characters.enumerated() where UnifiedSocialCreditCode.values[character] == nil {
            return "character \(index + 1) '\(character)' is not allowed (use 0-9 and upper-case letters except I, O, S, V, Z)"
        }
        guard characters[2..<8].allSatisfy({ $0.isASCII && $0.isNumber }) else {
            return "characters 3 to 8 (the region code) should be digits"
        }
        let expected = UnifiedSocialCreditCode.checkCharacter(for: String(characters.prefix(17)))!
        guard expected == characters[17] else { return "check character should be '\(expected)', found '\(characters[17])'" }
        return nil
    }

    /// The messages as `MobileNumber.problem(in:)` built them from `Array(text)`.
    static func mobileReference(_ text: String) -> String? {
        let characters = Array(text)
        guard characters.count == 11, characters.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            return "should be 11 digits (no +86 prefix, no spaces)"
        }
        guard characters[0] == "1", ("3"..."9").contains(characters[1]) else { return "should start with 13 to 19" }
        return nil
    }

    /// Each of `valid` spoiled: every character replaced, removed, doubled, and followed by extras.
    static func spoiled(_ valid: [String]) -> [String] {
        let replacements: [String] = [
            "0", "1", "5", "9", "x", "X", "A", "I", "O", "Z", "a", " ", "-", "\r", "\n", "\r\n", "１", "李", "\u{301}", "e\u{301}",
            "🙂", "\0",
        ]
        var texts = Set(valid)
        for text in valid {
            let characters = Array(text)
            for position in 0...characters.count {
                for replacement in replacements {
                    var replaced = characters
                    if position < characters.count { replaced[position] = Character(replacement) }
                    texts.insert(String(replaced))
                    var inserted = characters
                    inserted.insert(contentsOf: replacement, at: position)
                    texts.insert(String(inserted))
                }
                if position < characters.count {
                    var removed = characters
                    removed.remove(at: position)
                    texts.insert(String(removed))
                    // A combining mark after a character makes one character of the two.
                    texts.insert(String(characters[..<position]) + String(characters[position]) + "\u{301}" + String(characters[(position + 1)...]))
                }
            }
            texts.insert(text + "\r\n")
            texts.insert("\r\n" + text.dropFirst(2))
        }
        for text in ["", "1", "\r\n", String(repeating: "李", count: 18), String(repeating: "1", count: 17) + "\r\n"] { texts.insert(text) }
        return texts.sorted()
    }

    @Test func residentIDMessagesAreUnchanged() {
        let valid = ["11010519491231002X", "440604202501150134", "44060419380412031X", "430102200206100467", "910105189912310021", "110105209912310021"]
        let texts = Self.spoiled(valid)
        #expect(texts.count > 1_000)
        for today in [CivilDate(year: 2026, month: 11, day: 30)!, CivilDate(year: 1949, month: 12, day: 31)!] {
            var refused = 0
            for text in texts {
                let expected = Self.residentIDReference(text, today: today)
                #expect(ResidentIDNumber.problem(in: text, today: today) == expected, "\(text.debugDescription)")
                if expected != nil { refused += 1 }
            }
            #expect(refused > texts.count / 2)
        }
    }

    @Test func creditCodeMessagesAreUnchanged() {
        let texts = Self.spoiled(["91350100M000100Y43", "92440604MA4X8K2Q1R", "91440604MA51R7T3X1"])
        #expect(texts.count > 1_000)
        for text in texts {
            #expect(UnifiedSocialCreditCode.problem(in: text) == Self.creditCodeReference(text), "\(text.debugDescription)")
        }
    }

    @Test func mobileMessagesAreUnchanged() {
        for text in Self.spoiled(["13800138000", "15874001234", "19912345678"]) {
            #expect(MobileNumber.problem(in: text) == Self.mobileReference(text), "\(text.debugDescription)")
        }
    }
}
