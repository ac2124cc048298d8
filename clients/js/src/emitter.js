// A minimal event emitter: no dependency, and errors thrown by one listener neither stop the
// others nor break the client's own state.

export class Emitter {
  /** @param {string[]} names the events that exist, so a typo fails loudly at `on()` */
  constructor(names) {
    /** @type {Map<string, Function[]>} */
    this.listeners = new Map(names.map((name) => [name, []]));
  }

  /**
   * @param {string} name
   * @param {Function} fn
   * @returns {() => void} a function that removes the listener
   */
  on(name, fn) {
    const list = this.listFor(name);
    if (typeof fn !== 'function') throw new TypeError(`on('${name}', fn): fn must be a function`);
    list.push(fn);
    return () => this.off(name, fn);
  }

  /** Removes a listener added with `on` (the last one, if added twice). */
  off(name, fn) {
    const list = this.listFor(name);
    const at = list.lastIndexOf(fn);
    if (at >= 0) list.splice(at, 1);
  }

  /** @param {string} name */
  count(name) {
    return this.listFor(name).length;
  }

  /**
   * Calls every listener with `value`. A listener that throws is reported asynchronously (as an
   * uncaught error, where the platform shows those) rather than thrown into the client.
   * @returns {{threw: boolean, pending: Promise<unknown>[]}} what the listeners did, so the
   *   client acknowledges only what was handled (and waits for listeners returning promises)
   */
  emit(name, value) {
    let threw = false;
    const pending = [];
    for (const fn of this.listFor(name).slice()) {
      try {
        const result = fn(value);
        if (result && typeof result.then === 'function') pending.push(result);
      } catch (err) {
        threw = true;
        rethrowLater(err);
      }
    }
    return { threw, pending };
  }

  listFor(name) {
    const list = this.listeners.get(name);
    if (!list) {
      throw new TypeError(`unknown event '${name}': use one of ${[...this.listeners.keys()].join(', ')}`);
    }
    return list;
  }
}

/** Throws `err` from a fresh task, so it reaches the platform's uncaught-error reporting. */
export function rethrowLater(err) {
  setTimeout(() => {
    throw err;
  }, 0);
}
