import EventLog
import Testing

@testable import Subscriptions

@Suite("Subscription cursors and patterns")
struct CursorTests {
    @Test("A cursor reads back as the offsets it was made of; partitions at 0 are not written")
    func roundTrip() throws {
        let offsets: [TopicPartition: Int64] = [
            TopicPartition("application.restaurant.submitted", 0): 1,
            TopicPartition("application.restaurant.submitted", 5): 300_000_000_000,
            TopicPartition("approval.tax.requested", 2): 127,
            TopicPartition("approval.tax.requested", 3): 128,
            TopicPartition("approval.tax.requested", 4): 0,
        ]
        let cursor = SubscriptionCursor(offsets: offsets)
        let text = cursor.text
        #expect(text.hasPrefix("1."))
        #expect(!text.contains("=") && !text.contains("+") && !text.contains("/"))
        let read = try SubscriptionCursor.parse(
            text, topics: ["approval.tax.requested", "application.restaurant.submitted", "other.topic.x"])
        #expect(read == cursor)
        #expect(read[TopicPartition("approval.tax.requested", 4)] == 0)
        #expect(read[TopicPartition("other.topic.x", 0)] == 0)
        #expect(SubscriptionCursor().text == "1.")
    }

    @Test("One topic of six partitions makes a cursor of about 40 characters")
    func compact() {
        var offsets: [TopicPartition: Int64] = [:]
        for partition in 0..<6 { offsets[TopicPartition("application.restaurant.submitted", partition)] = 5_000 + Int64(partition) }
        #expect(SubscriptionCursor(offsets: offsets).text.count <= 45)
    }

    @Test("Entries of topics not in the subscription are ignored")
    func otherTopicsIgnored() throws {
        let text = SubscriptionCursor(offsets: [TopicPartition("a.b.c", 0): 7, TopicPartition("d.e.f", 1): 9]).text
        let read = try SubscriptionCursor.parse(text, topics: ["d.e.f"])
        #expect(read.offsets == [TopicPartition("d.e.f", 1): 9])
    }

    @Test("A text that is no cursor is refused with what is wrong", arguments: ["", "2.AAAA", "1.!!", "1.A", "1.AAAAAAAAAAA"])
    func malformed(text: String) {
        #expect(throws: CursorError.self) { try SubscriptionCursor.parse(text, topics: ["a.b.c"]) }
    }

    @Test("Base64url round trip for every length")
    func base64() {
        for length in 0..<20 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 250) }
            #expect(Base64URL.decode(Substring(Base64URL.encode(bytes))) == bytes)
        }
    }

    @Test("A pattern's * matches any run of characters over the whole name")
    func glob() {
        #expect(TopicSelection.pattern("approval.*").matches("approval.tax.requested"))
        #expect(TopicSelection.pattern("approval.*.requested").matches("approval.tax.requested"))
        #expect(!TopicSelection.pattern("approval.*.requested").matches("approval.tax.decided"))
        #expect(TopicSelection.pattern("*").matches("x"))
        #expect(!TopicSelection.pattern("approval").matches("approval.tax"))
        #expect(TopicSelection.pattern("a*b*c").matches("aXbYbZc"))
        #expect(!TopicSelection.pattern("a*b*c").matches("aXbYbZ"))
    }
}
