import { describe, expect, it } from 'vitest';
import { loadConfig, MAX_MACHINE_TYPES, parseMachineTypes, resolveRelayUrl, sameOriginWs, type FetchLike } from './config';

const http = { protocol: 'http:', host: '127.0.0.1:8080' };
const https = { protocol: 'https:', host: 'dash.example.run.app' };

function fetchReturning(status: number, body: unknown, seen?: string[]): FetchLike {
  return async (url, init) => {
    seen?.push(`${url} ${init?.cache}`);
    return {
      ok: status >= 200 && status < 300,
      status,
      json: async () => {
        if (typeof body === 'string') return JSON.parse(body);
        return body;
      },
    };
  };
}

describe('resolveRelayUrl', () => {
  it('uses same-origin /ws when empty or missing, wss on https', () => {
    expect(sameOriginWs(http)).toBe('ws://127.0.0.1:8080/ws');
    expect(sameOriginWs(https)).toBe('wss://dash.example.run.app/ws');
    for (const raw of [undefined, null, '', '   ', 42, {}]) {
      expect(resolveRelayUrl(raw, https)).toEqual({ relayUrl: 'wss://dash.example.run.app/ws', source: 'same-origin' });
    }
  });

  it('keeps ws and wss URLs', () => {
    expect(resolveRelayUrl('wss://relay.example/ws', http)).toEqual({ relayUrl: 'wss://relay.example/ws', source: 'config' });
    expect(resolveRelayUrl('ws://10.0.0.1:9000/ws?x=1', http).relayUrl).toBe('ws://10.0.0.1:9000/ws?x=1');
  });

  it('maps http(s) to ws(s) and resolves a path against the page origin', () => {
    expect(resolveRelayUrl('https://relay.example/ws', http).relayUrl).toBe('wss://relay.example/ws');
    expect(resolveRelayUrl('http://relay.example:81/ws', http).relayUrl).toBe('ws://relay.example:81/ws');
    expect(resolveRelayUrl('/relay/ws', https).relayUrl).toBe('wss://dash.example.run.app/relay/ws');
  });

  it('upgrades ws:// and http:// to wss:// on an https page (no mixed content)', () => {
    expect(resolveRelayUrl('ws://relay.example/ws', https).relayUrl).toBe('wss://relay.example/ws');
    expect(resolveRelayUrl('ws://relay.example:8081/ws?a=1', https).relayUrl).toBe('wss://relay.example:8081/ws?a=1');
    expect(resolveRelayUrl('http://relay.example/ws', https).relayUrl).toBe('wss://relay.example/ws');
    expect(resolveRelayUrl('https://relay.example/ws', https).relayUrl).toBe('wss://relay.example/ws');
    expect(resolveRelayUrl('wss://relay.example/ws', https).relayUrl).toBe('wss://relay.example/ws');
    // an http page may use either
    expect(resolveRelayUrl('ws://relay.example/ws', http).relayUrl).toBe('ws://relay.example/ws');
  });

  it('rejects other schemes and garbage', () => {
    expect(resolveRelayUrl('ftp://x/ws', http).source).toBe('same-origin');
    expect(resolveRelayUrl('not a url', http).source).toBe('same-origin');
    expect(resolveRelayUrl('//evil.example/ws', http).source).toBe('same-origin');
  });
});

describe('loadConfig', () => {
  it('fetches /config.json uncached and uses relayUrl', async () => {
    const seen: string[] = [];
    const cfg = await loadConfig(fetchReturning(200, { relayUrl: 'wss://r.example/ws', extra: true }, seen), http);
    expect(seen).toEqual(['/config.json no-store']);
    expect(cfg).toEqual({ relayUrl: 'wss://r.example/ws', source: 'config' });
  });

  it('reads the machine types when given, keeping only string entries', async () => {
    const cfg = await loadConfig(
      fetchReturning(200, { relayUrl: '', machineTypes: { 'vm-a': 'e2-small', 'vm-b': 7, 'vm-c': '', ['x'.repeat(65)]: 'e2' } }),
      http,
    );
    expect(cfg.machineTypes).toEqual({ 'vm-a': 'e2-small' });
    expect(parseMachineTypes([1])).toBeNull();
    expect(parseMachineTypes({})).toBeNull();
    const many = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`vm-${i}`, 'e2-small']));
    expect(Object.keys(parseMachineTypes(many)!)).toHaveLength(MAX_MACHINE_TYPES);
  });

  it('falls back to same-origin on 404 and on a 2xx without a relayUrl', async () => {
    const same = { relayUrl: 'ws://127.0.0.1:8080/ws', source: 'same-origin' };
    expect(await loadConfig(fetchReturning(200, { relayUrl: '' }), http)).toEqual(same);
    expect(await loadConfig(fetchReturning(200, {}), http)).toEqual(same);
    expect(await loadConfig(fetchReturning(404, 'nope'), http)).toEqual(same);
    // a static host that answers every path with index.html
    expect(await loadConfig(fetchReturning(200, '<!doctype html>'), http)).toEqual(same);
    expect(await loadConfig(fetchReturning(200, 'null'), http)).toEqual(same);
    expect(await loadConfig(fetchReturning(200, [1, 2]), http)).toEqual(same);
  });

  /** a fetch that fails with each of `failures` in turn, then answers with the config */
  function flaky(failures: ('network' | 'hang' | 500 | 503 | 'cut')[]) {
    let n = 0;
    const fn: FetchLike = (_url, init) => {
      const f = failures[n++];
      if (f === 'network') return Promise.reject(new TypeError('Failed to fetch'));
      if (f === 'hang')
        return new Promise((_resolve, reject) => {
          init?.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
        });
      if (f === 'cut')
        return Promise.resolve({ ok: true, status: 200, json: () => Promise.reject(new TypeError('network error')) });
      if (typeof f === 'number') return fetchReturning(f, 'Service Unavailable')('/config.json', init);
      return fetchReturning(200, { relayUrl: 'wss://relay.example/ws' })('/config.json', init);
    };
    return { fn, calls: () => n };
  }

  it('retries network errors, timeouts, 5xx and cut-off bodies with backoff instead of falling back', async () => {
    const waits: number[] = [];
    const f = flaky(['network', 500, 'hang', 503, 'cut', 'network']);
    const cfg = await loadConfig(f.fn, https, {
      timeoutMs: 20,
      random: () => 1,
      sleep: async (ms) => {
        waits.push(ms);
      },
    });
    expect(cfg).toEqual({ relayUrl: 'wss://relay.example/ws', source: 'config' });
    expect(f.calls()).toBe(7);
    expect(waits).toEqual([500, 1000, 2000, 4000, 8000, 10_000]);
  });
});
