// Keeps an error in one of our views (a plot that cannot be drawn, a file that changed under
// us) inside that view: the message replaces the view, the rest of the page keeps working.
import { Component, type ErrorInfo, type ReactNode } from 'react';

interface Props {
  children: ReactNode;
  /** A change of this value (e.g. another selection) clears the error and tries again. */
  resetKey?: string;
}

interface State {
  error?: Error;
}

class ViewBoundary extends Component<Props, State> {
  state: State = {};

  static getDerivedStateFromError(error: Error): State {
    return { error };
  }

  componentDidUpdate(previous: Props): void {
    if (this.state.error && previous.resetKey !== this.props.resetKey) {
      this.setState({ error: undefined });
    }
  }

  componentDidCatch(error: Error, info: ErrorInfo): void {
    console.error(error, info.componentStack);
  }

  render(): ReactNode {
    const { error } = this.state;
    if (error) {
      return (
        <p className="bd-empty bd-error" data-testid="view-error">
          This view failed: {error.message}
        </p>
      );
    }
    return this.props.children;
  }
}

export default ViewBoundary;
