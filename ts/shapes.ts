/**
 * Hidden classes that outlive every run.
 *
 * V8 gives the instances of a class a hidden class (a "map") per set of
 * fields, and optimized code checks and depends on those maps. A map that no
 * live object uses is freed by the next full collection that reduces memory,
 * which large ArrayBuffers trigger (a run's typed output, or the outputs a
 * function returns). Every run builds its own session, queues, geometry and
 * chunk assemblers, and all of them are gone when it ends: so each run freed
 * their maps, V8 threw away the optimized code of some 30 hot functions, and
 * the next run started in unoptimized code while the compiler threads built
 * the same code again (about 15% of a 10-million-point typed cold run's CPU
 * on two cores).
 *
 * `keepShape` keeps one small exemplar of such a class alive for the life of
 * the process: built through the class's own constructor, it has the same
 * maps as real instances, so they survive between runs. Exemplars hold
 * placeholders only, never a run's data.
 */
const kept: object[] = [];

/**
 * Keeps `exemplar` (a small instance of a class hot code uses) alive for
 * good, and with it its maps. `fractional` names its number fields that
 * start at a small integer and later hold fractions (times in ms): they get
 * a fraction here, so the kept map already stores them as doubles (the first
 * fraction stored in a small-integer field moves its object to a new map).
 */
export function keepShape<T extends object>(exemplar: T, fractional: readonly string[] = []): T {
  const fields = exemplar as Record<string, unknown>;
  for (const f of fractional) {
    if (typeof fields[f] !== 'number') throw new Error(`keepShape: ${exemplar.constructor.name} has no number field ${f}`);
    fields[f] = 0.5;
  }
  kept.push(exemplar);
  return exemplar;
}

/**
 * Objects made per chunk or point are built with `new`, not as object or
 * array literals. V8 keeps an allocation site per literal and, once it saw
 * most of a site's recent objects alive at one young collection (a run opens
 * thousands of chunks at once, and which site it happens to sample is a
 * matter of timing), allocates all of that site's later objects straight in
 * the old generation: objects that die at once then pile up there as
 * garbage until a full collection, and a run of a million tiny chunks peaked
 * at 270-300 MB instead of ~210 MB, one run in three. Instances of a
 * constructor have no allocation site.
 *
 * `PlainRecord` makes an empty object whose prototype is Object.prototype,
 * like `{}` (for records handed to user code, such as a job's axes).
 */
export const PlainRecord = function PlainRecord() {} as unknown as new () => Record<string, never>;
PlainRecord.prototype = Object.prototype;
