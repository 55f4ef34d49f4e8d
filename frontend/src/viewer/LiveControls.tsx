// Refresh and Follow in the viewer bar (./live.ts): Refresh reads the file again now;
// Follow polls the selected object and refreshes when it grows, showing its current shape
// and when it last changed.
import { clock, POLL_MS, useFollow } from './live';

const FOLLOW_TITLE =
  `Check the selected dataset every ${POLL_MS / 1000} s and show it again when it grows ` +
  '(the frame player stays on the last frame)';

interface Props {
  apiURL: string;
  file: string;
  path: string;
  follow: boolean;
  onFollow: (follow: boolean) => void;
  onRefresh: () => void;
}

function LiveControls(props: Props) {
  const { apiURL, file, path, follow, onFollow, onRefresh } = props;
  const status = useFollow({
    apiURL,
    file,
    path,
    enabled: follow,
    onGrow: onRefresh,
    onStop: () => onFollow(false),
  });
  const { shape, changedAt, since, error } = status;
  return (
    <span className="bd-live" data-testid="live">
      <button
        type="button"
        onClick={onRefresh}
        data-testid="refresh"
        title="Read the file again: new frames and lengths of a file being written"
      >
        ⟳ Refresh
      </button>
      <button
        type="button"
        aria-pressed={follow}
        onClick={() => {
          if (!follow) {
            onRefresh(); // what is on screen may already be behind the file
          }
          onFollow(!follow);
        }}
        data-testid="follow"
        title={FOLLOW_TITLE}
      >
        {follow ? '● Following' : 'Follow'}
      </button>
      {follow && shape && (
        <span
          className="bd-live-status"
          data-testid="live-status"
          data-length={shape[0] ?? ''}
          data-shape={shape.join(',')}
          data-changed={changedAt ? changedAt.toISOString() : ''}
        >
          Length {shape[0] ?? '–'} ({shape.length ? shape.join('×') : 'scalar'}) ·{' '}
          {changedAt
            ? `changed ${clock(changedAt)}`
            : `no change since ${since ? clock(since) : '–'}`}
        </span>
      )}
      {error && !follow && (
        <span className="bd-error" data-testid="live-error" role="alert">
          Follow stopped: {error}
        </span>
      )}
    </span>
  );
}

export default LiveControls;
