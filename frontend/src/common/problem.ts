// The one reading of BeamDesk's error answers: problem details (RFC 9457), as
// beamdesk/web/problems.py sends them for every /api error, declared in the OpenAPI document.
import type { components } from './api.gen';

export type ProblemDetails = components['schemas']['ProblemDetails'];

/** A failed API call: its status and the problem's `detail`, said as is to the user. */
export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
    public problem?: ProblemDetails,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The body as problem details, when it is one (a proxy's HTML error page is not). */
export function asProblem(body: unknown): ProblemDetails | undefined {
  if (typeof body !== 'object' || body === null) {
    return undefined;
  }
  const { detail } = body as Partial<Record<keyof ProblemDetails, unknown>>;
  return typeof detail === 'string' && detail !== ''
    ? (body as ProblemDetails)
    : undefined;
}

/** The error of a response that is not ok: the problem's detail, else the status line. */
export async function problemOf(response: Response): Promise<ApiError> {
  let problem: ProblemDetails | undefined;
  try {
    problem = asProblem(await response.json());
  } catch {
    // not JSON: keep the status line
  }
  const statusLine = `${response.status} ${response.statusText}`.trim();
  return new ApiError(response.status, problem?.detail ?? statusLine, problem);
}

/** Just the message of {@link problemOf}. */
export async function problemText(response: Response): Promise<string> {
  return (await problemOf(response)).message;
}
