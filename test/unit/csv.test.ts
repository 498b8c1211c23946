import t from 'tap'
import { crlfRecords, csvCell, csvRecord, neutraliseFormula, quoteField } from '../../src/lib/csv.js'

t.test('quoteField quotes only what RFC 4180 requires, doubling inner quotes', async (t) => {
  t.equal(quoteField('plain'), 'plain')
  t.equal(quoteField(''), '')
  t.equal(quoteField('a,b'), '"a,b"')
  t.equal(quoteField('say "hi"'), '"say ""hi"""')
  t.equal(quoteField('"'), '""""')
  t.equal(quoteField('one\r\ntwo'), '"one\r\ntwo"')
  t.equal(quoteField('lf\nonly'), '"lf\nonly"')
  t.equal(quoteField('cr\ronly'), '"cr\ronly"')
  t.equal(quoteField('请求超时，重试'), '请求超时，重试', 'a full-width comma is not a separator')
  t.equal(quoteField("it's; fine\ttoo"), "it's; fine\ttoo", 'semicolons, apostrophes and inner tabs need no quotes')
})

t.test('neutraliseFormula prefixes a quote to what a spreadsheet would run', async (t) => {
  for (const text of ['=SUM(A1)', '+1', '-1', '@x', '\tx', '\rx', '=', '-']) t.equal(neutraliseFormula(text), `'${text}`, JSON.stringify(text))
  for (const text of ['', 'SUM(A1)', 'a=b', '1+1', ' =1', "'quoted", '＝全角']) t.equal(neutraliseFormula(text), text, `${JSON.stringify(text)} is left alone`)
})

t.test('csvCell: text neutralised then quoted; numbers and booleans as they are', async (t) => {
  t.equal(csvCell('=HYPERLINK("http://x","y")'), '"\'=HYPERLINK(""http://x"",""y"")"')
  t.equal(csvCell('-1,2'), '"\'-1,2"')
  t.equal(csvCell('\rx'), '"\'\rx"', 'CR is neutralised and, being CR, quoted')
  t.equal(csvCell(-5), '-5', 'a negative number is not text')
  t.equal(csvCell(0), '0')
  t.equal(csvCell(1_764_460_800), '1764460800')
  t.equal(csvCell(true), 'true')
  t.equal(csvCell(false), 'false')
  t.equal(csvCell(null), '')
  t.equal(csvCell(undefined), '')
})

t.test('csvRecord ends a record with CRLF', async (t) => {
  t.equal(csvRecord(['id', 'content']), 'id,content\r\n')
  t.equal(csvRecord([2, 'a,b', '@x', true]), '2,"a,b",\'@x,true\r\n')
  t.equal(csvRecord([]), '\r\n')
})

t.test('crlfRecords ends LF-terminated records with CRLF, leaving line feeds inside quotes alone', async (t) => {
  const convert = (text: string, records: number) => {
    const { text: out, lastRecordStart } = crlfRecords(Buffer.from(text), records)
    return { text: out.toString(), last: Buffer.from(text).subarray(lastRecordStart).toString() }
  }
  t.strictSame(convert('1,a\n2,b\n', 2), { text: '1,a\r\n2,b\r\n', last: '2,b\n' }, 'no line feed inside a field')
  t.strictSame(convert('1,"x\ny"\n2,"say ""\n"""\n3,z\n', 3), { text: '1,"x\ny"\r\n2,"say ""\n"""\r\n3,z\r\n', last: '3,z\n' }, 'quoted line feeds stay')
  t.strictSame(convert('1,"a\n\nb"\n', 1), { text: '1,"a\n\nb"\r\n', last: '1,"a\n\nb"\n' }, 'one record holding more line feeds than there are records')
  t.strictSame(convert('1,"cr\ronly"\n', 1), { text: '1,"cr\ronly"\r\n', last: '1,"cr\ronly"\n' }, 'a CR inside a field is data')
  t.strictSame(convert('1,请求\n2,超时\n', 2), { text: '1,请求\r\n2,超时\r\n', last: '2,超时\n' }, 'UTF-8 passes through')
  t.strictSame(convert('', 0), { text: '', last: '' })
})
