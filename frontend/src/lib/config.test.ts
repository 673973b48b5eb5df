import { describe, expect, it } from 'vitest';
import { loadConfig, resolveRelayUrl, sameOriginWs, type FetchLike } from './config';

const http = { protocol: 'http:', host: '127.0.0.1:8080' };
const https = { protocol: 'https:', host: 'dash.example.run.app' };

function fetchReturning(status: number, body: unknown, seen?: string[]): FetchLike {
  return async (url, init) => {
    seen?.push(`${url} ${init?.cache}`);
    return {
      ok: status >= 200 && status < 300,
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

  it('falls back to same-origin on empty relayUrl, 404, bad JSON, non-object and network errors', async () => {
    const same = { relayUrl: 'ws://127.0.0.1:8080/ws', source: 'same-origin' };
    expect(await loadConfig(fetchReturning(200, { relayUrl: '' }), http)).toEqual(same);
    expect(await loadConfig(fetchReturning(404, 'nope'), http)).toEqual(same);
    expect(await loadConfig(fetchReturning(200, '{bad json'), http)).toEqual(same);
    expect(await loadConfig(fetchReturning(200, 'null'), http)).toEqual(same);
    expect(await loadConfig(fetchReturning(200, [1, 2]), http)).toEqual(same);
    const failing: FetchLike = async () => {
      throw new TypeError('network down');
    };
    expect(await loadConfig(failing, http)).toEqual(same);
  });

  it('gives up on a hanging fetch after the timeout', async () => {
    const hanging: FetchLike = (_url, init) =>
      new Promise((_resolve, reject) => {
        init?.signal?.addEventListener('abort', () => reject(new Error('aborted')));
      });
    const cfg = await loadConfig(hanging, https, 20);
    expect(cfg.relayUrl).toBe('wss://dash.example.run.app/ws');
  });
});
