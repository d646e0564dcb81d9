import EventSchemas
import Foundation
import Testing

@Suite("Personal data masked in bodies and text")
struct PersonalDataTests {
    func masked(_ json: String) throws -> JSONValue {
        try JSONValue.parse(PersonalData.maskBody(Data(json.utf8)))
    }

    @Test func residentIDsAreMaskedByFieldNameAndByValue() throws {
        let body = try masked(
            #"{"residentId":"440602199003071233","child":{"residentId":"not-an-id"},"taxpayerId":"440606199005110481","sellerResidentId":"440602199003071233"}"#)
        #expect(body[pointer: "/residentId"] == .string("440602********1233"))
        #expect(body[pointer: "/child/residentId"] == .string("*********"), "by name, whatever it holds")
        #expect(body[pointer: "/taxpayerId"] == .string("440606********0481"), "by value")
        #expect(body[pointer: "/sellerResidentId"] == .string("440602********1233"))
    }

    @Test func mobileNumbersAreMaskedByFieldNameAndByValue() throws {
        let body = try masked(#"{"applicant":{"mobile":"13800138000"},"contactPhone":"020-8888","to":"13912345678"}"#)
        #expect(body[pointer: "/applicant/mobile"] == .string("138****8000"))
        #expect(body[pointer: "/contactPhone"] == .string("020*8888"))
        #expect(body[pointer: "/to"] == .string("139****5678"))
    }

    @Test func peoplesNamesAreMaskedButNotOtherNames() throws {
        let body = try masked(
            #"""
            {"applicant":{"name":"王小明","residentId":"440602199003071233"},
             "business":{"name":"好味餐饮有限公司","creditCode":"91440606MA4W8KXB7X"},
             "materials":[{"name":"营业执照","pages":2}],
             "mother":{"name":"欧阳娜","mobile":"13800138000"},
             "taxpayerId":"440606199005110481","taxpayerName":"李四",
             "applicantName":"张三"}
            """#)
        #expect(body[pointer: "/applicant/name"] == .string("王**"))
        #expect(body[pointer: "/mother/name"] == .string("欧**"))
        #expect(body[pointer: "/taxpayerName"] == .string("李*"))
        #expect(body[pointer: "/applicantName"] == .string("张*"))
        #expect(body[pointer: "/business/name"] == .string("好味餐饮有限公司"), "a business is no person")
        #expect(body[pointer: "/business/creditCode"] == .string("91440606MA4W8KXB7X"), "credit codes are not personal")
        #expect(body[pointer: "/materials/0/name"] == .string("营业执照"))
        let company = try masked(#"{"taxpayerId":"91440606MA4W8KXB7X","taxpayerName":"好味餐饮有限公司"}"#)
        #expect(company[pointer: "/taxpayerName"] == .string("好味餐饮有限公司"), "a company taxpayer keeps its name")
    }

    @Test func nonPersonalFieldsAreUntouched() throws {
        let json =
            #"{"amountFen":4500000,"applicationId":"RS-2025-000001","paidAt":"2025-03-05T10:30:00+08:00","voucherNumber":"344066250300098765","ok":true,"note":null,"period":"2025-03"}"#
        let original = try JSONValue.parse(Data(json.utf8))
        #expect(try masked(json) == original)
    }

    @Test func invalidJSONIsMaskedAsText() {
        let text = #"{"residentId":"440602199003071233","name":"王小明","mobile":"13800138000"#
        let masked = String(decoding: PersonalData.maskBody(Data(text.utf8)), as: UTF8.self)
        #expect(masked == #"{"residentId":"440602********1233","name":"王**","mobile":"138****8000"#)
    }

    @Test func logTextIsMaskedWhereNumbersStandAlone() {
        #expect(
            PersonalData.maskText("applicant 440602199003071233 called from 13800138000, 13912345678.")
                == "applicant 440602********1233 called from 138****8000, 139****5678.")
        #expect(
            PersonalData.maskText("offset 1380013800012345 voucher 344066250300098765 id RS-2025-000001")
                == "offset 1380013800012345 voucher 344066250300098765 id RS-2025-000001",
            "longer runs of digits and numbers without a right check character stay")
        #expect(PersonalData.maskField("residentId", "x12") == "***")
        #expect(PersonalData.maskField("topic", "household.birth.registered") == "household.birth.registered")
    }
}
