import t from 'tap'
import { inlineValues } from '../../src/queries/logs/export.js'

// COPY takes no parameters: an export's values are inlined into its statement as literals.
t.test('inlineValues writes integers as they are and strings as escaped literals', async (t) => {
  t.equal(inlineValues('select 1 where a = $1 and b = $2', [42, 'gpt-4']), "select 1 where a = 42 and b = 'gpt-4'")
  t.equal(inlineValues('x = $1', ["o'brien"]), "x = 'o''brien'", 'a quote doubled')
  t.equal(inlineValues('x = $1', ['back\\slash']), "x =  E'back\\\\slash'", 'a backslash in an E string, doubled')
  t.equal(inlineValues('x = $1 or y = $10', [-5, 2, 3, 4, 5, 6, 7, 8, 9, 'ten']), "x = -5 or y = 'ten'", '$10 is not $1 then 0')
  t.equal(inlineValues('x = $1', ['$2']), "x = '$2'", 'an inlined value is not scanned again')
})

t.test('inlineValues refuses what it cannot write safely', async (t) => {
  t.throws(() => inlineValues('x = $1', [1.5]))
  t.throws(() => inlineValues('x = $1', [2 ** 60]))
  t.throws(() => inlineValues('x = $1', [null]))
  t.throws(() => inlineValues('x = $1', [true]))
  t.throws(() => inlineValues('x = $2', [1]), 'a missing parameter')
})
