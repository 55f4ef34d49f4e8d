import { describe, expect, it } from 'vitest';

import { ApiError, asProblem, problemOf, problemText } from './problem';

function problem(status: number, detail: string, extra: Record<string, unknown> = {}): Response {
  const body = { type: 'about:blank', title: 'T', status, detail, message: detail, ...extra };
  return new Response(JSON.stringify(body), {
    status,
    statusText: 'Not Found',
    headers: { 'content-type': 'application/problem+json' },
  });
}

describe('problemOf', () => {
  it('reads the detail, status and request id of a problem', async () => {
    const err = await problemOf(problem(500, 'Quote request id ab12.', { request_id: 'ab12' }));
    expect(err).toBeInstanceOf(ApiError);
    expect(err.status).toBe(500);
    expect(err.message).toBe('Quote request id ab12.');
    expect(err.problem?.request_id).toBe('ab12');
  });

  it('falls back to the status line for a body that is no problem', async () => {
    const html = new Response('<h1>Bad gateway</h1>', { status: 502, statusText: 'Bad Gateway' });
    expect(await problemText(html)).toBe('502 Bad Gateway');
    const other = new Response(JSON.stringify({ detail: [{ msg: 'x' }] }), {
      status: 422,
      statusText: 'Unprocessable Entity',
    });
    expect(await problemText(other)).toBe('422 Unprocessable Entity');
  });

  it('says the detail of a 404 as is', async () => {
    expect(await problemText(problem(404, 'No /x here.'))).toBe('No /x here.');
  });
});

describe('asProblem', () => {
  it('accepts problem details only', () => {
    expect(asProblem(null)).toBeUndefined();
    expect(asProblem('text')).toBeUndefined();
    expect(asProblem({ detail: '' })).toBeUndefined();
    expect(asProblem({ detail: 'x', status: 409 })?.detail).toBe('x');
  });
});
